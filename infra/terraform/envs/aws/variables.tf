variable "region" {
  type        = string
  description = "AWS region of the deployment."
}

variable "name" {
  type        = string
  description = "Name of the service."
  default     = "heartgate"
}

variable "package_s3_bucket" {
  type        = string
  description = "S3 bucket holding the Lambda zip package."
}

variable "package_s3_key" {
  type        = string
  description = "S3 key of the Lambda zip package (named by its sha256)."
}

variable "package_sha256" {
  type        = string
  description = "Base64 sha256 of the zip package."
}

variable "live_version" {
  type        = string
  description = "Published version the `live` alias points at; null on a first deploy."
  default     = null
}

variable "previous_live_version" {
  type        = string
  description = "The version `live` pointed at before `live_version` (what a rollback goes back to); kept in the state."
  default     = null
}

variable "environment" {
  type        = map(string)
  description = "Environment variables of the function (serving limits)."
  default     = {}
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource (stable across deploys)."
  default     = { app = "heartgate" }
}

variable "function_tags" {
  type        = map(string)
  description = "Lineage tags for the function (registry version, bento)."
  default     = {}
}

variable "api_key_secret_arn" {
  type        = string
  description = "ARN of the Secrets Manager secret holding the API key the function requires (\"\": no key). Only the ARN is stored."
  default     = ""
}
