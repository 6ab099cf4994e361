variable "bento_tag" {
  type        = string
  description = "The bento to serve, e.g. heartgate:v3. A new tag replaces the running server."
}

variable "host" {
  type        = string
  description = "Address the server listens on (loopback for the local target)."
  default     = "127.0.0.1"
}

variable "port" {
  type        = number
  description = "TCP port the server listens on."
}

variable "bentoml_bin" {
  type        = string
  description = "Path of the bentoml executable that serves the bento."
}

variable "python_bin" {
  type        = string
  description = "Python of the same environment, which runs heartgate.adapters.logpipe (the server's rotating log)."
}

variable "log_max_bytes" {
  type        = number
  description = "The server log is rotated when it reaches this size."
  default     = 10485760
}

variable "log_backups" {
  type        = number
  description = "Rotated server logs kept (server.log.1 .. server.log.N)."
  default     = 3
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
  description = "Extra environment variables for the server process (serving limits)."
  default     = {}
}

variable "api_key_sha256" {
  type        = string
  description = "Fingerprint of the API key the server requires (\"\": none). The key itself comes from HEARTGATE_API_KEY in the apply's environment and is never stored."
  default     = ""
}

variable "startup_timeout_s" {
  type        = number
  description = "Seconds to wait for /readyz before the apply fails."
  default     = 60
}
