terraform {
  required_version = ">= 1.5"
  # State lives under heartgate's state dir: heartgate passes `-backend-config=path=...` at init.
  backend "local" {}
}
