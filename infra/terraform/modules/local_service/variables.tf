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

variable "startup_timeout_s" {
  type        = number
  description = "Seconds to wait for /readyz before the apply fails."
  default     = 60
}
