# The local target (the embedded default): the bento served on loopback.
module "service" {
  source = "../../modules/local_service"

  bento_tag    = var.bento_tag
  host         = "127.0.0.1"
  port         = var.port
  bentoml_bin  = var.bentoml_bin
  bentoml_home = var.bentoml_home
  run_dir      = var.run_dir
  environment  = var.environment

  python_bin    = var.python_bin
  log_max_bytes = var.log_max_bytes
  log_backups   = var.log_backups

  api_key_sha256 = var.api_key_sha256
}
