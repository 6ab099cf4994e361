variable "name" {
  type        = string
  description = "Name of the service: the Lambda function, its role, log group, ECR repository and HTTP API."
}

variable "package_s3_bucket" {
  type        = string
  description = "S3 bucket holding the Lambda zip package (handler, ONNX model, onnxruntime and numpy for the Lambda platform)."
}

variable "package_s3_key" {
  type        = string
  description = "S3 key of the zip package; the same on every machine, so any of them can apply, roll back or destroy."
}

variable "package_sha256" {
  type        = string
  description = "Base64 sha256 of the zip package; a change publishes a new function version."
}

variable "handler" {
  type        = string
  description = "Lambda handler entry point inside the package."
  default     = "service.lambda_handler.handler"
}

variable "runtime" {
  type        = string
  description = "Lambda Python runtime; must match the platform the package's wheels were built for."
  default     = "python3.11"
}

variable "memory_mb" {
  type        = number
  description = "Memory of the function in MB (CPU scales with it)."
  default     = 1024
}

variable "timeout_s" {
  type        = number
  description = "Function timeout in seconds."
  default     = 15
}

variable "environment" {
  type        = map(string)
  description = "Environment variables of the function (serving limits)."
  default     = {}
}

variable "live_version" {
  type        = string
  description = "Published function version the `live` alias points at; null: the version this apply publishes (first deploy)."
  default     = null
}

variable "routes" {
  type        = list(string)
  description = "HTTP API routes sent to the function."
  default     = ["POST /predict", "GET /metadata", "GET /livez", "GET /readyz"]
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's CloudWatch logs."
  default     = 30
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource; keep them stable across deploys."
  default     = {}
}

variable "function_tags" {
  type        = map(string)
  description = "Extra tags for the function only, which changes with every deploy anyway (lineage: registry version, bento)."
  default     = {}
}

variable "api_key_secret_arn" {
  type        = string
  description = "ARN of the Secrets Manager secret holding the API key (\"\": none); the function may read it, nothing else."
  default     = ""
}
