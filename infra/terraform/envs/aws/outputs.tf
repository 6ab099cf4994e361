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
