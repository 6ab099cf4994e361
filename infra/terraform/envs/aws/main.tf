# The AWS target: the promoted model on Lambda behind an HTTP API.
module "service" {
  source = "../../modules/lambda_service"

  name               = var.name
  package_s3_bucket  = var.package_s3_bucket
  package_s3_key     = var.package_s3_key
  package_sha256     = var.package_sha256
  live_version       = var.live_version
  environment        = var.environment
  api_key_secret_arn = var.api_key_secret_arn
  tags               = var.tags
  function_tags      = var.function_tags
}
