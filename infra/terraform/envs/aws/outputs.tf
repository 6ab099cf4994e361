output "url" {
  description = "Base URL of the served API."
  value       = module.service.endpoint_url
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = module.service.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = module.service.function_arn
}

output "published_version" {
  description = "The version this apply published."
  value       = module.service.published_version
}

output "live_version" {
  description = "The version API Gateway invokes through the `live` alias."
  value       = module.service.live_version
}

output "code_sha256" {
  description = "Base64 sha256 of the deployed package."
  value       = module.service.code_sha256
}

output "deployment" {
  description = "The variables of the last apply: any machine reads, rolls back or destroys the deployment from this state alone."
  value = {
    region                = var.region
    name                  = var.name
    package_s3_bucket     = var.package_s3_bucket
    package_s3_key        = var.package_s3_key
    package_sha256        = var.package_sha256
    live_version          = var.live_version
    previous_live_version = var.previous_live_version
    environment           = var.environment
    api_key_secret_arn    = var.api_key_secret_arn
    function_tags         = var.function_tags
  }
}
