# Credentials come from the standard AWS chain (environment, shared config, SSO, instance role).
# No endpoint is set here: against an emulator, AWS_ENDPOINT_URL points the provider at it.
provider "aws" {
  region = var.region
}
