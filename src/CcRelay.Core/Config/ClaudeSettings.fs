namespace CcRelay.Core

open System
open System.Net
open System.Text.Encodings.Web
open System.Text.Json
open System.Text.Json.Nodes

/// What to do with Claude Code's `settings.json` after an edit was decided.
[<RequireQualifiedAccess>]
type SettingsEdit =
    /// Write `Text` in place of the file; `Changes` says what changed, one sentence each.
    | Write of Text: string * Changes: string list
    /// Leave the file as it is (nothing to do); `Reason` says why.
    | Unchanged of Reason: string
    /// The file cannot be edited safely (not JSON, or not the shape Claude Code writes): leave it untouched.
    | Refused of Reason: string

/// Points Claude Code at the relay through `env.ANTHROPIC_BASE_URL` in its `settings.json`, and takes that
/// back, without touching anything else in the file: other keys keep their values and their order.
///
/// NOTE: no credential is ever written. The Go cc-relay also wrote `ANTHROPIC_AUTH_TOKEN=managed-by-cc-relay`,
/// which Claude Code then sent as a bearer token and the relay forwarded upstream, where it failed
/// (seed-cc-relay.md §16 #3). That exact placeholder is removed when found; a real token is never touched.
[<RequireQualifiedAccess>]
module ClaudeSettings =

    /// The variable Claude Code reads its API base URL from.
    let baseUrlVariable: string = "ANTHROPIC_BASE_URL"

    /// The placeholder credential the Go cc-relay wrote into `env.ANTHROPIC_AUTH_TOKEN`.
    let goPlaceholderToken: string = "managed-by-cc-relay"

    /// The URL Claude Code should use to reach a relay listening on `listen`: a wildcard address is reached
    /// through loopback. Port 0 (the OS picks one at start-up) gives no usable URL.
    let clientUrl (listen: ListenAddress) : Result<string, string> =
        if listen.Port = 0 then
            Error "server.listen uses port 0, so the port is only known once the relay runs"
        else
            let host =
                match IPAddress.TryParse listen.Host with
                | true, NonNull address when address.Equals IPAddress.Any -> "127.0.0.1"
                | true, NonNull address when address.Equals IPAddress.IPv6Any -> "::1"
                | _ -> listen.Host

            Ok $"http://%s{string { listen with Host = host }}"

    /// URLs that differ only in letter case of scheme and host, or in a trailing slash, are the same relay.
    let private sameUrl (a: string) (b: string) : bool =
        let normalize (text: string) =
            match Uri.TryCreate(text.Trim(), UriKind.Absolute) with
            | true, NonNull uri -> uri.GetLeftPart(UriPartial.Path).TrimEnd('/')
            | _ -> text.Trim()

        String.Equals(normalize a, normalize b, StringComparison.Ordinal)

    let private writeOptions: JsonSerializerOptions =
        JsonSerializerOptions(
            WriteIndented = true,
            NewLine = "\n",
            // A settings file is read by people, not embedded in HTML: keep `<`, `&` and non-ASCII as they are.
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping
        )

    let private render (root: JsonObject) : string = root.ToJsonString writeOptions + "\n"

    let private describe (node: JsonNode | null) : string =
        match node with
        | null -> "null"
        | node -> node.ToJsonString writeOptions

    /// A property's value (`Some null` for an explicit JSON null), or None when the key is absent.
    let private property (name: string) (container: JsonObject) : (JsonNode | null) option =
        let mutable node: JsonNode | null = null

        if container.TryGetPropertyValue(name, &node) then
            Some node
        else
            None

    let private asText (node: JsonNode | null) : string option =
        match node with
        | :? JsonValue as value ->
            match value.TryGetValue<string>() with
            | true, NonNull text -> Some text
            | _ -> None
        | _ -> None

    /// A value for a message: a string as it is, anything else as JSON.
    let private shown (node: JsonNode | null) : string =
        asText node |> Option.defaultWith (fun () -> describe node)

    /// Parses the file and edits it. An empty file counts as `{}`. Any failure, including one that only
    /// shows while editing (a duplicate key), refuses the edit.
    let private edit (settings: string) (change: JsonObject -> Result<SettingsEdit, string>) : SettingsEdit =
        let outcome =
            try
                if String.IsNullOrWhiteSpace settings then
                    change (JsonObject())
                else
                    match JsonNode.Parse settings with
                    | :? JsonObject as root -> change root
                    | _ -> Error "its top level is not a JSON object"
            with
            | :? JsonException as e ->
                // The message ends with a 0-based " LineNumber: 0 | BytePositionInLine: 1."; say it 1-based.
                let message =
                    match e.Message.IndexOf " LineNumber:" with
                    | -1 -> e.Message
                    | cut -> e.Message.Substring(0, cut)

                match Option.ofNullable e.LineNumber, Option.ofNullable e.BytePositionInLine with
                | Some line, Some position ->
                    Error $"it is not valid JSON (line %d{line + 1L}, byte %d{position + 1L}: %s{message})"
                | _ -> Error $"it is not valid JSON (%s{message})"
            | :? ArgumentException as e -> Error $"it cannot be read as JSON settings (%s{e.Message})"
            | :? InvalidOperationException as e -> Error $"it cannot be read as JSON settings (%s{e.Message})"

        match outcome with
        | Ok edit -> edit
        | Error reason -> SettingsEdit.Refused reason

    /// `env`, when present and an object. `"env": null` counts as absent.
    let private env (root: JsonObject) : Result<JsonObject option, string> =
        match property "env" root with
        | None
        | Some null -> Ok None
        | Some(:? JsonObject as env) -> Ok(Some env)
        | Some other -> Error $"its \"env\" is not a JSON object (it is %s{describe other})"

    /// Removes the Go placeholder token, when that exact value is there.
    let private removePlaceholder (env: JsonObject) : string list =
        match property "ANTHROPIC_AUTH_TOKEN" env |> Option.bind asText with
        | Some token when token = goPlaceholderToken ->
            env.Remove "ANTHROPIC_AUTH_TOKEN" |> ignore

            [
                $"removed env.ANTHROPIC_AUTH_TOKEN = \"%s{goPlaceholderToken}\", a placeholder written by the Go cc-relay that Claude Code would send as a credential"
            ]
        | _ -> []

    /// Sets `env.ANTHROPIC_BASE_URL` to `url`, creating `env` when missing; every other key is kept as it is.
    let setBaseUrl (settings: string) (url: string) : SettingsEdit =
        edit settings (fun root ->
            env root
            |> Result.map (fun existing ->
                let env =
                    match existing with
                    | Some env -> env
                    | None ->
                        let created = JsonObject()
                        root["env"] <- created
                        created

                let previous = property baseUrlVariable env

                let urlChange =
                    match previous with
                    | Some node when asText node = Some url -> []
                    | Some node ->
                        env[baseUrlVariable] <- JsonValue.Create url
                        [ $"changed env.%s{baseUrlVariable} from %s{shown node} to %s{url}" ]
                    | None ->
                        env[baseUrlVariable] <- JsonValue.Create url
                        [ $"set env.%s{baseUrlVariable} to %s{url}" ]

                match urlChange @ removePlaceholder env with
                | [] -> SettingsEdit.Unchanged $"env.%s{baseUrlVariable} is already %s{url}"
                | changes -> SettingsEdit.Write(render root, changes)))

    /// Removes `env.ANTHROPIC_BASE_URL` when it is `expected` (any value when `expected` is None), and `env`
    /// itself when that leaves it empty. A URL pointing elsewhere is someone else's setting: it stays.
    let removeBaseUrl (settings: string) (expected: string option) : SettingsEdit =
        edit settings (fun root ->
            env root
            |> Result.map (fun existing ->
                match existing with
                | None -> SettingsEdit.Unchanged $"env.%s{baseUrlVariable} is not set; nothing to remove"
                | Some env ->
                    let placeholder = removePlaceholder env

                    let urlChange, kept =
                        match property baseUrlVariable env, expected with
                        | None, _ -> [], None
                        | Some node, Some url when asText node |> Option.exists (sameUrl url) |> not ->
                            [], Some $"env.%s{baseUrlVariable} is %s{shown node}, not this relay's URL %s{url}"
                        | Some node, _ ->
                            env.Remove baseUrlVariable |> ignore
                            [ $"removed env.%s{baseUrlVariable} (it was %s{shown node})" ], None

                    let emptied =
                        if env.Count = 0 && not (urlChange @ placeholder).IsEmpty then
                            root.Remove "env" |> ignore
                            [ "removed \"env\", which became empty" ]
                        else
                            []

                    match urlChange @ placeholder @ emptied, kept with
                    | [], Some reason ->
                        SettingsEdit.Unchanged $"%s{reason}; it was left as it is (--force removes it anyway)"
                    | [], None -> SettingsEdit.Unchanged $"env.%s{baseUrlVariable} is not set; nothing to remove"
                    | changes, Some reason -> SettingsEdit.Write(render root, changes @ [ $"kept %s{reason}" ])
                    | changes, None -> SettingsEdit.Write(render root, changes)))

/// The C#-facing surface of `SettingsEdit`.
type SettingsEdit with

    /// `ClaudeSettings.removeBaseUrl`: `expected` null removes any value.
    static member RemoveBaseUrl(settings: string, expected: string | null) : SettingsEdit =
        ClaudeSettings.removeBaseUrl settings (Option.ofObj expected)
