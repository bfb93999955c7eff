namespace CcRelay.Core

open System

/// Decodes and renders `state` (docs/scale-out.md). The connection string is a secret: no message quotes it.
[<RequireQualifiedAccess>]
module internal ConfigState =

    let private stateKeys: string list = [ "postgres"; "flush_interval_ms" ]

    /// The connection-string keys a relay accepts: Npgsql's, as `Key=Value` pairs separated by `;`.
    let private knownKeys: string list = [
        "host"
        "server"
        "port"
        "database"
        "db"
        "username"
        "user id"
        "userid"
        "user"
        "password"
        "passfile"
        "ssl mode"
        "sslmode"
        "trust server certificate"
        "root certificate"
        "ssl certificate"
        "ssl key"
        "timeout"
        "command timeout"
        "keepalive"
        "tcp keepalive"
        "application name"
        "pooling"
        "minimum pool size"
        "maximum pool size"
        "connection idle lifetime"
        "include error detail"
        "search path"
        "options"
        "target session attributes"
        "load balance hosts"
        "gss encryption mode"
        "kerberos service name"
        "channel binding"
        "no reset on close"
        "multiplexing"
    ]

    /// The problems of a connection string, none of which quotes a value (a value may be a password):
    /// `Key=Value` pairs separated by `;`, with known keys, naming a `Host`.
    let problems (text: string) : string list =
        let pairs =
            text.Split(';', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
            |> List.ofArray

        let malformed = pairs |> List.filter (fun p -> p.IndexOf '=' <= 0) |> List.length

        let keys =
            pairs
            |> List.filter (fun p -> p.IndexOf '=' > 0)
            |> List.map (fun p -> p.Substring(0, p.IndexOf '=').Trim().ToLowerInvariant())

        let unknown = keys |> List.filter (fun k -> not (List.contains k knownKeys))

        [
            if
                text.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
                || text.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase)
            then
                "a URL is not accepted: write Npgsql's key=value form, e.g. Host=db.internal;Port=5432;Database=ccrelay;Username=relay;Password=${PGPASSWORD}"
            else
                if malformed > 0 then
                    $"%d{malformed} part(s) are not Key=Value pairs: write Npgsql's key=value form separated by ';', e.g. Host=db.internal;Database=ccrelay;Username=relay;Password=${{PGPASSWORD}}"

                for k in unknown |> List.distinct do
                    $"""unknown connection-string key "%s{k}"; allowed: Host, Port, Database, Username, Password, SSL Mode, Timeout, Command Timeout, Application Name, Maximum Pool Size and the other Npgsql keywords"""

                if not (keys |> List.exists (fun k -> k = "host" || k = "server")) then
                    "the connection string names no Host"
        ]

    /// `state`.
    let decode (root: Fields) : Decoded<StateConfig> =
        ConfigRead.subsection "state" stateKeys root
        |> Decoded.bind (fun fields ->
            decoded {
                let! postgres = fields |> ConfigRead.field "postgres" ConfigRead.optionalString

                and! flush =
                    fields
                    |> ConfigRead.field "flush_interval_ms" (ConfigRead.optionalInteger 20L 10_000L)
                    |> Decoded.orDefault (int64 Config.defaultState.FlushIntervalMs)

                return postgres, flush
            }
            |> Decoded.bind (fun (postgres, flush) ->
                let config = {
                    Postgres = postgres |> Option.filter (fun p -> p.Trim().Length > 0)
                    FlushIntervalMs = int flush
                }

                match config.Postgres |> Option.map problems with
                | None
                | Some [] -> Decoded.ok config
                | Some issues ->
                    let at = ConfigRead.valueAt "postgres" fields
                    let cursor = fields.Cursor.Child "postgres"

                    issues
                    |> List.map (fun message -> (Decoded.error (ConfigRead.issue cursor at message): Decoded<unit>))
                    |> Decoded.sequence
                    |> Decoded.map (fun _ -> config)))

    /// `state` as `config show` renders it: the connection string as `<redacted>`.
    let render (redacted: string) (config: StateConfig) : string list = [
        "state:"
        match config.Postgres with
        | Some _ -> $"  postgres: \"%s{redacted}\""
        | None -> "  postgres: null"
        $"  flush_interval_ms: %d{config.FlushIntervalMs}"
    ]
