output "url" {
  description = "Base URL of the served API."
  value       = local.url
}

output "bento_tag" {
  description = "The bento being served."
  value       = var.bento_tag
}

output "pidfile" {
  description = "Pidfile of the server process (its process group is the server)."
  value       = local.pidfile
}
