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

# The relay configurations write_relay_config knows.
RELAY_VARIANTS=(off on logs metrics devnull default pooled bedrock vertex openai gemini noclients clients staged shared)

# The static test credentials the cloud variants use and FakeUpstream checks (its defaults): SigV4 with a fixed
# key pair for bedrock, a bearer token (keys[].key) for vertex. Test values, valid nowhere but in the fake.
BENCH_AWS_KEY_ID=AKIABENCHFAKE0000000
BENCH_AWS_SECRET=bench/fake/secret/key/0000000000000000000
BENCH_VERTEX_TOKEN=bench-vertex-token

# relay_variant_ok NAME: whether NAME is one of RELAY_VARIANTS
relay_variant_ok() { [[ " ${RELAY_VARIANTS[*]} " == *" $1 "* ]]; }

write_relay_config() { # $1 = file, $2 = listen port, $3 = upstream port, $4 = variant: one of RELAY_VARIANTS (default: default)
    case "${4:-default}" in
        # the clouds, on the same upstream through base_url: bedrock signs every request with SigV4 (static keys,
        # no `keys`), vertex sends keys[].key as a bearer token (no Google credentials needed)
        bedrock)
            printf 'server:\n  listen: "127.0.0.1:%s"\nproviders:\n  - name: fake\n    type: bedrock\n    base_url: "http://127.0.0.1:%s"\n    aws_region: us-east-1\n    aws_access_key_id: "%s"\n    aws_secret_access_key: "%s"\nlogging:\n  level: warn\n' \
                "$2" "$3" "$BENCH_AWS_KEY_ID" "$BENCH_AWS_SECRET" > "$1"
            return ;;
        # the translated providers (bench/translated.sh): an OpenAI Chat Completions server with a key (its reasoning
        # field and thinking control at their defaults), Gemini on AI Studio with a key
        openai)
            printf 'server:\n  listen: "127.0.0.1:%s"\nproviders:\n  - name: fake\n    type: openai\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "bench-key"\n    model_mapping:\n      "claude-sonnet-4-6": "bench-model"\nlogging:\n  level: warn\n' \
                "$2" "$3" > "$1"
            return ;;
        gemini)
            printf 'server:\n  listen: "127.0.0.1:%s"\nproviders:\n  - name: fake\n    type: gemini\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "bench-key"\n    model_mapping:\n      "claude-sonnet-4-6": "bench-model"\nlogging:\n  level: warn\n' \
                "$2" "$3" > "$1"
            return ;;
        vertex)
            printf 'server:\n  listen: "127.0.0.1:%s"\nproviders:\n  - name: fake\n    type: vertex\n    base_url: "http://127.0.0.1:%s"\n    gcp_project_id: bench-project\n    gcp_region: us-east5\n    keys:\n      - key: "%s"\nlogging:\n  level: warn\n' \
                "$2" "$3" "$BENCH_VERTEX_TOKEN" > "$1"
            return ;;
    esac
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
        # the client-key pair (issue 21 §6, docs/teams.md): the ledger off in both, so the difference is the client
        # key's check, limits and budget settlement alone; the benchmark's x-api-key (bench-client-key) is the client's
        # key, with limits and budgets far above what the benchmark sends (every bucket and budget is charged and
        # settled on every request, none runs dry)
        noclients) printf 'logging:\n  level: warn\nledger:\n  enabled: false\n' >> "$1" ;;
        # shared: the client-key relay with its state on the PostgreSQL named by $CC_RELAY_BENCH_PG (bench/shared-state.sh)
        clients|shared)
            printf 'logging:\n  level: warn\nledger:\n  enabled: false\nclients:\n  - name: bench\n    key_sha256: "1d9eb6f32b54cfdbc0846e361fc310d58fd5fbc3dad6cabf369ea41f14e78fd2"\n    rpm_limit: 100000000\n    itpm_limit: 2000000000\n    otpm_limit: 2000000000\n    max_concurrent: 100000\n    budget:\n      daily_usd: 100000000\n      weekly_usd: 100000000\n      monthly_usd: 100000000\n      total_usd: 100000000\n      by_model:\n        - models: "claude-sonnet-*"\n          weekly_usd: 100000000\n' >> "$1"
            if [[ $4 == shared ]]; then printf 'state:\n  postgres: "${CC_RELAY_BENCH_PG}"\n' >> "$1"; fi ;;
        # routing stages configured, every stage on the one provider: the route is default's, the difference is the
        # stage classification (one more pass over the body, Stages.inspect) on every request
        staged) printf 'routing:\n  stages:\n    long_context: fake\n    web_search: fake\n    image: fake\n    subagent: fake\n    background: fake\n    think: fake\n    default: fake\nlogging:\n  level: warn\n' >> "$1" ;;
    esac
}

# ---- shared by paired.sh, latency.sh and nginx-log.sh (run.sh has its own, which also copies the logs out) ----------

# progress on stderr (run.sh defines its own, which also writes its log, before it sources this file)
declare -F say >/dev/null || say() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# bench_scratch NAME: WORK = a new scratch directory, PIDS = () for every process started, bench/out made; on exit (or
# Ctrl-C) every process in PIDS is stopped (by PID) and WORK removed.
bench_scratch() {
    mkdir -p "$BENCH/out"
    WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
    # relays keep their default usage ledger (on), in the scratch dir rather than the user's ~/.local/state
    export XDG_STATE_HOME="$WORK/state"
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # a PostgreSQL started by start_postgres (not a child: pg_ctl detaches it): fast shutdown by its PID
    if [[ -n ${PG_PID:-} ]]; then
        kill -INT "$PG_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$WORK"
    exit "$rc"
}

# build_tools PROJECT...: dotnet build -c Release each, its output in $WORK/build.log (shown on failure)
build_tools() {
    local project
    say "building $* (dotnet build -c Release)"
    for project in "$@"; do
        dotnet build -c Release "$project" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
    done
}

# start_postgres DIR: a PostgreSQL cluster of its own in DIR (installed from Debian's packages when missing; as nobody
# when run as root), on a free loopback port (PG_PORT) with database ccrelay (user ccrelay, trust), durable as a
# production server is (fsync on); PG_PID is its postmaster, stopped by bench_cleanup
start_postgres() {
    local bin as=()
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [[ -z $bin ]]; then
        if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    mkdir -p "$1/sock"
    if [[ $(id -u) -eq 0 ]]; then chmod 755 "$WORK" "$1"; chown -R nobody "$1"; as=(runuser -u nobody --); fi
    "${as[@]}" "$bin/initdb" -D "$1/data" -U ccrelay -A trust --no-sync -E UTF8 >/dev/null
    "${as[@]}" "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
        -o "-p $PG_PORT -k $1/sock -c listen_addresses=127.0.0.1" start >/dev/null
    PG_PID=$(head -1 "$1/data/postmaster.pid")
    "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U ccrelay -d postgres -qc "CREATE DATABASE ccrelay" >/dev/null
}

# start_upstream DIR PORT: nginx (one worker) answering every request with MESSAGE_JSON; its PID is added to PIDS
start_upstream() {
    mkdir -p "$1/tmp"
    {
        nginx_common "$1"; echo "worker_processes 1;"
        echo "http {"; nginx_http_common "$1"
        cat <<EOC
    server {
        listen 127.0.0.1:$2 backlog=8192;
        default_type application/json;
        location / { return 200 '$MESSAGE_JSON'; }
    }
}
EOC
    } >"$1/nginx.conf"
    nginx -c "$1/nginx.conf" -p "$1" >/dev/null 2>&1 &
    PIDS+=($!)
}

# write_wrk_script DIR [TEMPLATE [NAME]]: DIR/NAME.lua (post), a wrk script sending the benchmark's Claude Code request
# (non-streaming) made from TEMPLATE (default: bench/payloads/messages.template.json)
write_wrk_script() {
    local h name="${3:-post}" body="$1/body.json"
    [[ $name == post ]] || body="$1/$name-body.json"
    sed -e 's/__STREAM__/false/' -e 's/__BENCH__//' "${2:-$BENCH/payloads/messages.template.json}" >"$body"
    {
        echo 'wrk.method = "POST"'
        echo "local f = io.open(\"$body\", \"rb\"); wrk.body = f:read(\"*a\"); f:close()"
        while IFS= read -r h; do
            [[ -z $h ]] && continue
            printf 'wrk.headers["%s"] = "%s"\n' "${h%%:*}" "$(echo "${h#*:}" | sed 's/^ *//; s/"/\\"/g')"
        done <"$BENCH/payloads/headers.txt"
    } >"$1/$name.lua"
}

# ratio_summary FILE FIELD WHAT: over FILE's "round" lines, the median of the FIELDth value from the end (0 = last)
# and a distribution-free 95 % interval [r_k, r_(n+1-k)], k the largest with P(Bin(n, 1/2) < k) <= 2.5 %; appended
# to FILE and shown
ratio_summary() {
    awk -v f="$2" '/^round/ {print $(NF - f)}' "$1" | sort -n | awk -v what="$3" '
        { v[NR] = $1 }
        END {
            n = NR; median = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            k = 0; cdf = 0; p = 0.5 ^ n; c = 1
            for (i = 0; i < n; i++) { cdf += c * p; if (cdf > 0.025) break; k = i + 1; c = c * (n - i) / (i + 1) }
            if (k >= 1) printf "B/A %s: median %.3f, 95 %% interval %.3f - %.3f (n = %d)\n", what, median, v[k], v[n + 1 - k], n
            else printf "B/A %s: median %.3f (n = %d: too few rounds for an interval)\n", what, median, n
        }' | tee -a "$1"
}

# ---- shared by ttfb.sh and clouds.sh ---------------------------------------------------------------------------------

# start_fake LOG PORT: bench/FakeUpstream on 127.0.0.1:PORT (Anthropic, Bedrock and Vertex paths; it checks the
# cloud credentials above); its PID is added to PIDS. Its exit line (CHECKS …) counts the signatures it verified.
start_fake() {
    dotnet "$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll" --port "$2" --aws-key-id "$BENCH_AWS_KEY_ID" \
        --aws-secret "$BENCH_AWS_SECRET" --vertex-token "$BENCH_VERTEX_TOKEN" >"$1" 2>&1 &
    PIDS+=($!)
}

# start_proxy_nginx DIR PORT UPSTREAM_PORT: the reference proxy (as bench/run.sh configures it: keep-alive upstream,
# proxy_buffering off, so SSE events pass as they come); its PID is added to PIDS
start_proxy_nginx() {
    mkdir -p "$1/tmp"
    {
        nginx_common "$1"; echo "worker_processes auto;"
        echo "http {"; nginx_http_common "$1"
        cat <<EOC
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
    upstream up { server 127.0.0.1:$3; keepalive 256; keepalive_requests 1000000; keepalive_timeout 300s; }
    server { listen 127.0.0.1:$2 backlog=8192; location / { proxy_pass http://up; } }
}
EOC
    } >"$1/nginx.conf"
    nginx -c "$1/nginx.conf" -p "$1" >/dev/null 2>&1 &
    PIDS+=($!)
}

# start_relay NAME PORT UPSTREAM_PORT VARIANT: the relay ($RELAY_DLL) with write_relay_config's VARIANT, its config and
# log in $WORK; its PID is added to PIDS. wait_relay PORT: until its /health lists the provider "fake" (the benchmark
# config: otherwise it would forward off the machine, and it gets no traffic).
start_relay() {
    write_relay_config "$WORK/$1.yaml" "$2" "$3" "$4"
    dotnet "$RELAY_DLL" serve --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
}
wait_relay() {
    for _ in $(seq 150); do curl -sf -m 1 "http://127.0.0.1:$1/health" | grep -q '"name":"fake"' && return 0; sleep 0.1; done
    say "the relay on port $1 did not come up with the benchmark config"; return 1
}
wait_listen() { # PORT
    "${LOADGEN[@]}" wait-port --port "$1" --timeout-s 30
}

# bench_header TITLE: the lines every report starts with (commit, date, cores, load average)
bench_header() {
    echo "$1"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src bench || echo ' (+ uncommitted changes)'), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
}

# quick_option "$@": the scripts' one option, --quick (sets QUICK=1); anything else is a usage error
quick_option() {
    QUICK=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --quick) QUICK=1; shift ;;
            *) echo "unknown option: $1 (see the header of $0)" >&2; exit 2 ;;
        esac
    done
}

# replace_generated_block NAME BLOCK FILE: puts BLOCK's lines between FILE's `<!-- BEGIN generated by NAME -->` and
# `<!-- END generated by NAME -->` lines, in place of what was there; the rest of FILE stays as it is. Without both
# markers FILE is left alone and this fails.
replace_generated_block() {
    local begin="<!-- BEGIN generated by $1 -->" end="<!-- END generated by $1 -->"
    if ! grep -qxF -- "$begin" "$3" || ! grep -qxF -- "$end" "$3"; then
        echo "$3 has no '$begin' … '$end' block: left alone" >&2
        return 1
    fi
    awk -v begin="$begin" -v end="$end" -v block="$2" '
        $0 == begin { print; while ((getline line < block) > 0) print line; inside = 1; next }
        $0 == end { inside = 0 }
        !inside' "$3" >"$3.new" && mv "$3.new" "$3"
}

# ---- the path users take (bench/real-path.sh, paired.sh UPSTREAM=…): a TLS upstream and a realistic one ------------

# make_test_tls DIR: a throwaway CA (DIR/ca.pem) and a server certificate for 127.0.0.1 (IP SAN, CN 127.0.0.1) it
# signed (DIR/server.pem, DIR/server.key), ECDSA P-256, valid two days. Made at run time in the scratch directory,
# never kept: the relay trusts the CA through SSL_CERT_FILE (its process only), nginx through
# proxy_ssl_trusted_certificate; both verify the certificate and its name.
make_test_tls() {
    mkdir -p "$1"
    (
        cd "$1"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj "/CN=cc-relay bench throwaway CA" -keyout ca.key -out ca.pem \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
            -keyout server.key -out server.csr
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" -days 2 \
            -extfile server.ext -out server.pem
        openssl verify -CAfile ca.pem server.pem
        rm -f ca.key server.csr server.ext
    ) >"$1/openssl.log" 2>&1 || { cat "$1/openssl.log" >&2; return 1; }
}

# The realistic upstream: the answer's head after 200-800 ms (uniform, FakeUpstream's seeded draw, the same sequence
# for every lane), message_start and content_block_start in one write (as Anthropic's first events usually come).
: "${REAL_HEAD_MIN_US:=200000}" "${REAL_HEAD_MAX_US:=800000}"

# realistic_template SRC DST: the request template whose cc-bench knobs also ask for the realistic head delay.
# The knobs the load tools write (deltas, interval_us, first_us) come first and win over the ones added here.
realistic_template() {
    sed "s/__BENCH__/__BENCH__,first_us=0,head_min_us=$REAL_HEAD_MIN_US,head_max_us=$REAL_HEAD_MAX_US/" "$1" >"$2"
    grep -q "head_max_us=$REAL_HEAD_MAX_US" "$2" || { echo "realistic_template: no __BENCH__ in $1" >&2; return 1; }
}

# nginx_tls_check_log: http-level lines that log, to a TLS server's check log, only the requests whose user agent
# starts with cc-bench-check (the protocol check pass), with the protocol each proxy spoke to the upstream.
nginx_tls_check_log() {
    cat <<'EOC'
    log_format bench_check '$http_user_agent $server_protocol $ssl_protocol session_reused=$ssl_session_reused connection=$connection request_on_it=$connection_requests $request_uri';
    map $http_user_agent $bench_check { ~^cc-bench-check 1; default 0; }
EOC
}

# nginx_tls_server PORT TLS_DIR CHECK_LOG LOCATION: a server terminating TLS on 127.0.0.1:PORT (TLS 1.2/1.3; HTTP/2
# and HTTP/1.1 by ALPN) with TLS_DIR's certificate; LOCATION: the directives of its `location /`
nginx_tls_server() {
    cat <<EOC
    server {
        listen 127.0.0.1:$1 ssl http2 backlog=8192;
        ssl_certificate $2/server.pem;
        ssl_certificate_key $2/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench_tls_$1:10m;
        ssl_session_timeout 1h;
        access_log $3 bench_check if=\$bench_check;
        default_type application/json;
        location / { $4 }
    }
EOC
}

# nginx_https_proxy UPSTREAM_NAME TLS_DIR: the location directives with which the reference nginx proxies to an https
# upstream as a careful operator would: the certificate verified against the CA (name 127.0.0.1), TLS 1.3 allowed
# (nginx 1.22 offers only up to 1.2 to upstreams unless told), TLS sessions reused, connections kept alive (the
# `upstream` block's keepalive pool)
nginx_https_proxy() {
    echo "proxy_pass https://$1; proxy_ssl_trusted_certificate $2/ca.pem; proxy_ssl_verify on; proxy_ssl_verify_depth 2; proxy_ssl_name 127.0.0.1; proxy_ssl_server_name off; proxy_ssl_protocols TLSv1.2 TLSv1.3; proxy_ssl_session_reuse on;"
}

# nginx_fake_upstream FAKE_PORT, nginx_to_fake: the location directives of a server passing everything to FakeUpstream event by event
# (keep-alive HTTP/1.1, proxy_buffering off); the http level needs `upstream fake { … }` (nginx_fake_upstream)
nginx_fake_upstream() {
    echo "    upstream fake { server 127.0.0.1:$1; keepalive 256; keepalive_requests 1000000; keepalive_timeout 300s; }"
}
nginx_to_fake() {
    echo 'proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_read_timeout 600s;'
}
