locals {
  pidfile = "${var.run_dir}/server.pid"
  logfile = "${var.run_dir}/server.log"
  url     = "http://${var.host}:${var.port}"
  env     = join(" ", [for k, v in var.environment : "${k}='${v}'"])
  # The key's value is read by bash from the apply's environment: it never enters the state.
  api_key = var.api_key_sha256 == "" ? "" : "HEARTGATE_API_KEY=\"$HEARTGATE_API_KEY\""
}

# The bento server as a managed background process. Replacing the bento tag (or port) destroys the
# old server, then starts the new one; heartgate's deploy step rolls back by applying the previous
# tag again if the new server does not become ready or fails its smoke test.
resource "terraform_data" "server" {
  triggers_replace = [var.bento_tag, var.port, var.host, local.env, var.log_max_bytes, var.log_backups, var.api_key_sha256]

  # Everything the destroy provisioner needs must be in input: it can read only self.*.
  input = {
    pidfile = local.pidfile
    url     = local.url
  }

  provisioner "local-exec" {
    interpreter = ["/bin/bash", "-c"]
    command     = <<-EOT
      set -euo pipefail
      mkdir -p '${var.run_dir}'
      if curl -fs -o /dev/null '${local.url}/livez'; then
        echo "port ${var.port} already answers at ${local.url}: another server is running there" >&2
        exit 1
      fi
      # setsid: the server outlives terraform; it records its own pid (after setsid, $! is not it).
      # env -i: it starts with only what it needs (no cloud credentials of the run that deployed it).
      # Its output goes through a rotating log writer (at most log_max_bytes x (log_backups + 1)).
      env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME='${var.run_dir}' TMPDIR='${var.run_dir}' \
        BENTOML_HOME='${var.bentoml_home}' BENTOML_DO_NOT_TRACK=True ${local.env} ${local.api_key} \
        setsid nohup bash -c 'echo $$ > "$0"; exec "$1" serve "$2" --host "$3" --port "$4" > >(exec "$5" -m heartgate.adapters.logpipe "$6" "$7" "$8") 2>&1' \
        '${local.pidfile}' '${var.bentoml_bin}' '${var.bento_tag}' '${var.host}' '${var.port}' \
        '${var.python_bin}' '${local.logfile}' '${var.log_max_bytes}' '${var.log_backups}' \
        > /dev/null 2>&1 < /dev/null &
      for _ in $(seq 1 $(( ${var.startup_timeout_s} * 5 ))); do
        if curl -fs -o /dev/null '${local.url}/readyz'; then echo "serving ${var.bento_tag} at ${local.url}"; exit 0; fi
        if [ -s '${local.pidfile}' ] && ! kill -0 "$(cat '${local.pidfile}')" 2>/dev/null; then break; fi
        sleep 0.2
      done
      echo "bento server for ${var.bento_tag} did not become ready at ${local.url}; last log lines:" >&2
      tail -n 5 '${local.logfile}' >&2 || true
      exit 1
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/bash", "-c"]
    command     = <<-EOT
      pidfile='${self.input.pidfile}'
      [ -s "$pidfile" ] || exit 0
      pid=$(cat "$pidfile")
      workers=$(pgrep -P "$pid" || true)   # BentoML starts its workers in sessions of their own
      kill -TERM "$pid" 2>/dev/null || true  # the arbiter stops its workers on TERM
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" $workers 2>/dev/null || true
      rm -f "$pidfile"
      echo "stopped server $pid"
    EOT
  }
}
