variable "region" {
  type        = string
  description = "AWS region of the deployment."
}

variable "name" {
  type        = string
  description = "Name of the service."
  default     = "heartgate"
}

variable "package_file" {
  type        = string
  description = "Path of the Lambda zip package."
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
