# Shared by bench/run.sh, bench/paired.sh and bench/latency.sh (sourced, not run): the upstream's answer, nginx's common
# configuration, and the relay configurations each variant is measured with.

# The fixed JSON answer (no ' $ or \ so it can sit in an nginx 'return' string).
MESSAGE_JSON='{"id":"msg_01BenchFakeUpstream000000001","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"I read src/CcRelay.Core/Routing.fs. The planner orders attempts by strategy, then filters providers whose circuit is open and keys without capacity. The failing test expects the fallback provider to be tried after a 529 from the primary; the current code stops after the first retryable failure because the attempt list is truncated when the key pool reports zero capacity. I will change the filter so that an empty pool skips the provider instead of ending the plan, and add a property test for it."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2417,"cache_creation_input_tokens":0,"cache_read_input_tokens":18880,"output_tokens":112,"service_tier":"standard"}}'

nginx_common() { # $1 = prefix dir
    cat <<EOF
daemon off;
master_process on;
user www-data www-data;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
EOF
}
nginx_http_common() { # $1 = prefix dir
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_max_body_size 32m;
    client_body_buffer_size 256k;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

write_relay_config() { # $1 = file, $2 = listen port, $3 = upstream port, $4 = variant: default | off | on | logs | metrics | devnull | pooled
    if [[ ${4:-default} == pooled ]]; then
        # Three providers on the same upstream, round robin, each with a pool of four keys whose limits are far above
        # what the benchmark sends (the buckets are charged and refilled on every request, but never run dry).
        {
            printf 'server:\n  listen: "127.0.0.1:%s"\nrouting:\n  strategy: round_robin\nproviders:\n' "$2"
            for name in fake fake-b fake-c; do
                printf '  - name: %s\n    type: anthropic_compatible\n    base_url: "http://127.0.0.1:%s"\n    keys:\n' "$name" "$3"
                for k in 1 2 3 4; do
                    printf '      - key: "bench-%s-key-%s"\n        rpm_limit: 10000000\n        itpm_limit: 2000000000\n        otpm_limit: 1000000000\n' "$name" "$k"
                done
            done
            printf 'logging:\n  level: warn\n'
        } > "$1"
        return
    fi
    cat > "$1" <<EOC
server:
  listen: "127.0.0.1:$2"
providers:
  - name: fake
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$3"
    keys:
      - key: "bench-key"
EOC
    case "${4:-default}" in
        default|single) printf 'logging:\n  level: warn\n' >> "$1" ;;
        off) printf 'logging:\n  level: warn\nmetrics:\n  enabled: false\n' >> "$1" ;;
        # not *.log: the per-request log can be large and is not copied to bench/out
        on) printf 'logging:\n  level: info\n  format: json\n  output: "%s"\nmetrics:\n  enabled: true\n' "${1%.yaml}-requests.jsonl" >> "$1" ;;
        logs) printf 'logging:\n  level: info\n  format: json\n  output: "%s"\nmetrics:\n  enabled: false\n' "${1%.yaml}-requests.jsonl" >> "$1" ;;
        metrics) printf 'logging:\n  level: warn\nmetrics:\n  enabled: true\n' >> "$1" ;;
        devnull) printf 'logging:\n  level: info\n  format: json\n  output: "/dev/null"\nmetrics:\n  enabled: false\n' >> "$1" ;;
    esac
}
