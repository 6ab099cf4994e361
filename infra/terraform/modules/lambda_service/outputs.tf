output "endpoint_url" {
  description = "Base URL of the HTTP API (its $default stage)."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "published_version" {
  description = "The function version this apply's package is published as."
  value       = aws_lambda_function.this.version
}

output "live_version" {
  description = "The version the `live` alias (what API Gateway invokes) points at."
  value       = aws_lambda_alias.live.function_version
}

output "code_sha256" {
  description = "Base64 sha256 of the deployed package."
  value       = aws_lambda_function.this.code_sha256
}

output "ecr_repository_url" {
  description = "ECR repository for the optional container image."
  value       = aws_ecr_repository.this.repository_url
}
