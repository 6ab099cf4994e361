terraform {
  required_version = ">= 1.5"
  # Only the built-in terraform_data resource: no provider to download.
}
