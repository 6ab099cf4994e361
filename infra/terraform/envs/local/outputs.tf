output "url" {
  description = "Base URL of the served API."
  value       = module.service.url
}

output "bento_tag" {
  description = "The bento being served."
  value       = module.service.bento_tag
}
