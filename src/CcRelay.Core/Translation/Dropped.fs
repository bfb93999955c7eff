namespace CcRelay.Core

open System

/// What a translated request asked for that its target cannot do (issue 18 §4): the names the relay reports
/// (`x-cc-relay-dropped`, the request's `dropped` log field, `ccrelay_dropped_capabilities_total`), and the
/// refusal a provider with `on_dropped: refuse` answers instead of sending the request.
[<RequireQualifiedAccess>]
module Dropped =

    /// Capability names the relay reports by name in metrics; any other (a content block type the relay does
    /// not know, which the client chose) is counted as `other`, so the metric's label values stay a fixed set.
    let known: string list = [
        "cache_control"
        "web_search"
        "web_fetch"
        "bash"
        "text_editor"
        "code_execution"
        "computer"
        "memory"
        "tool_search_tool_regex"
        "tool_search_tool_bm25"
        "document"
        "image_source"
        "thinking"
        "thinking_blocks"
        "output_format"
        "top_k"
        "stop_sequences"
        "temperature"
        "top_p"
        "context_management"
        "container"
        "mcp_servers"
        "service_tier"
        "inference_geo"
        "server_tool_use"
        "search_result"
        "container_upload"
        "system_message"
    ]

    /// The label value `other` for a capability outside `known`.
    [<Literal>]
    let Other = "other"

    /// A reported name as it may appear in a header and a log line: lower-case letters, digits and `_` kept,
    /// anything else `_`, at most 64 characters (a block type is the client's text).
    let clean (capability: string) : string =
        let kept =
            capability
            |> String.map (fun c ->
                if Char.IsAsciiLetterLower c || Char.IsAsciiDigit c || c = '_' then
                    c
                elif Char.IsAsciiLetterUpper c then
                    Char.ToLowerInvariant c
                else
                    '_')

        if kept.Length > 64 then kept.Substring(0, 64) else kept

    /// The metric label of a reported capability: itself when `known`, else `other`.
    let label (capability: string) : string =
        if List.contains capability known then capability else Other

    /// The 400 a provider that refuses rather than drops answers: `invalid_request_error` naming what the
    /// target cannot do.
    let refusal (provider: string) (capabilities: string list) : byte array =
        ErrorEnvelope.toJson
            ErrorType.InvalidRequest
            $"""provider '%s{provider}' cannot carry what this request asks for: %s{String.concat ", " capabilities} (the provider is set to refuse rather than drop them: on_dropped: refuse)"""
