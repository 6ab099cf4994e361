variable "bento_tag" {
  type        = string
  description = "The bento to serve, e.g. heartgate:v3."
}

variable "port" {
  type        = number
  description = "Port of the local service."
  default     = 3000
}

variable "bentoml_bin" {
  type        = string
  description = "Path of the bentoml executable."
}

variable "bentoml_home" {
  type        = string
  description = "BENTOML_HOME holding the bento and model stores."
}

variable "run_dir" {
  type        = string
  description = "Directory for the server's pidfile and log."
}

variable "environment" {
  type        = map(string)
  description = "Extra environment variables for the server (serving limits)."
  default     = {}
}

variable "python_bin" {
  type        = string
  description = "Python of heartgate's environment (runs the server's rotating log writer)."
}

variable "log_max_bytes" {
  type        = number
  description = "The server log is rotated when it reaches this size."
  default     = 10485760
}

variable "log_backups" {
  type        = number
  description = "Rotated server logs kept."
  default     = 3
}

variable "api_key_sha256" {
  type        = string
  description = "Fingerprint of the API key the server requires (\"\": none); the key comes from HEARTGATE_API_KEY at apply time."
  default     = ""
}
