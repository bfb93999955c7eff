module CcRelay.Core.Properties.ConfigProperties

open CcRelay.Core
open FsCheck
open FsCheck.FSharp
open Xunit

/// Keys the decoder knows (and a few it does not), so generated documents reach deep into the schema.
let private keys: string list = [
    "server"
    "listen"
    "auth"
    "api_key"
    "allow_bearer"
    "timeout_ms"
    "max_body_bytes"
    "providers"
    "name"
    "type"
    "enabled"
    "base_url"
    "auth_header"
    "keys"
    "key"
    "rpm_limit"
    "priority"
    "pooling"
    "strategy"
    "model_mapping"
    "models"
    "aws_region"
    "logging"
    "level"
    "format"
    "output"
    "debug_options"
    "routing"
    "max_attempts"
    "failover_timeout"
    "hedge_after_ms"
    "default_provider"
    "health"
    "health_check"
    "probe"
    "url"
    "circuit_breaker"
    "failure_threshold"
    "window_ms"
    "family"
    "weight"
    "input"
    "output"
    "cache"
    "mode"
    "grpc"
    "metrics"
    "path"
    "prometheus_endpoint"
    "max_model_labels"
    "otel"
    "endpoint"
    "service_name"
    "pricing"
    "input"
    "output"
    "cache_read"
    "claude-*"
    "*"
    "unknown"
    "lsten"
]

/// Scalars that hit every typing rule: integers, booleans, nulls, references, URLs, enum values.
let private texts: string list = [
    ""
    "~"
    "null"
    "0"
    "-1"
    "60"
    "0x1F"
    "0o17"
    "99999999999999999999"
    "true"
    "False"
    "yes"
    "0.5"
    "model_based"
    "latency_based"
    "count_tokens"
    "anthropic"
    "zai"
    "bedrock"
    "anthropic_compatible"
    "x-api-key"
    "bearer"
    "json"
    "info"
    "127.0.0.1:8787"
    ":0"
    "[::1]:1"
    "nowhere"
    "http://localhost:1"
    "ftp://x"
    "https://u:p@h"
    "${SET}"
    "${UNSET}"
    "${UNSET:-d}"
    "${"
    "$$"
    "a$b"
    "0.30"
    ".5"
    "1e400"
    ".inf"
    "/metrics"
    "/v1/x"
]

let private position: Gen<Position> =
    Gen.map2 (fun line column -> { Line = line; Column = column }) (Gen.choose (1, 500)) (Gen.choose (1, 80))

let rec private node (depth: int) : Gen<ConfigNode> =
    let scalar =
        gen {
            let! text = Gen.elements texts
            let! quoted = Gen.elements [ true; false ]
            let! at = position

            let value =
                if quoted then
                    ScalarValue.String text
                else
                    ScalarValue.Plain text

            return Scalar(value, at)
        }

    if depth = 0 then
        scalar
    else
        let entry =
            gen {
                let! key = Gen.elements keys
                let! keyAt = position
                let! value = node (depth - 1)

                return {
                    Key = key
                    KeyAt = keyAt
                    Value = value
                }
            }

        Gen.frequency [
            2, scalar
            3,
            Gen.map2
                (fun entries at -> Mapping(entries |> List.distinctBy _.Key, at))
                (Gen.listOfLength 4 entry |> Gen.resize 6)
                position
            2, Gen.map2 (fun items at -> Sequence(items, at)) (Gen.listOf (node (depth - 1)) |> Gen.resize 3) position
        ]

let private plain (text: string) : ConfigNode =
    Scalar(ScalarValue.Plain text, { Line = 2; Column = 3 })

let private mapping (entries: (string * ConfigNode) list) : ConfigNode =
    Mapping(
        entries
        |> List.map (fun (k, v) -> {
            Key = k
            KeyAt = { Line = 2; Column = 1 }
            Value = v
        }),
        { Line = 2; Column = 1 }
    )

/// A mostly valid provider: few names (so duplicates happen), real types, keys that may be unset.
let private plausibleProvider: Gen<ConfigNode> =
    gen {
        let! name = Gen.elements [ "a"; "b"; "c" ]

        let! providerType =
            Gen.elements [ "anthropic"; "zai"; "minimax"; "ollama"; "vertex" ]

        let! enabled = Gen.elements [ "true"; "false" ]

        let! keyTexts =
            Gen.elements [ "k1"; "k2"; "${SET}"; "${UNSET}" ] |> Gen.listOf |> Gen.resize 3

        return
            mapping [
                "name", plain name
                "type", plain providerType
                "enabled", plain enabled
                "keys", Sequence(keyTexts |> List.map (fun k -> mapping [ "key", plain k ]), { Line = 2; Column = 1 })
            ]
    }

let private plausibleProviders: Gen<ConfigNode> =
    plausibleProvider
    |> Gen.listOf
    |> Gen.resize 4
    |> Gen.map (fun items -> mapping [ "providers", Sequence(items, { Line = 2; Column = 1 }) ])

let private document: Gen<ConfigNode> =
    Gen.map2
        (fun entries at -> Mapping(entries, at))
        (Gen.subListOf [ "server"; "providers"; "logging"; "routing"; "cache"; "metrics"; "otel" ]
         |> Gen.bind (fun names ->
             names
             |> List.map (fun n ->
                 node 3
                 |> Gen.map (fun v -> {
                     Key = n
                     KeyAt = { Line = 1; Column = 1 }
                     Value = v
                 }))
             |> Gen.sequenceToList))
        position

let private lookup (name: string) : string option =
    if name = "SET" then Some "value" else None

[<Fact>]
let ``decoding any document is total and every issue has a position`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb document) (fun doc ->
            let issues =
                match ConfigDecode.decode lookup doc with
                | Loaded(_, warnings) -> warnings
                | Invalid(errors, warnings) -> errors @ warnings

            issues |> List.forall (fun i -> i.Position.IsSome && i.Path <> "")))

[<Fact>]
let ``a loaded config has an enabled provider and unique provider names`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb document) (fun doc ->
            match ConfigDecode.decode lookup doc with
            | Loaded(config, _) ->
                let names = config.Providers |> List.map _.Name
                List.distinct names = names && config.Providers |> List.exists _.Enabled
            | Invalid(errors, _) -> not errors.IsEmpty))
