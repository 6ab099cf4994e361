terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
  # bucket, key, region, use_lockfile = true (and use_path_style for an emulator) are passed by
  # heartgate as -backend-config at init.
  backend "s3" {}
}
