/// Properties of whole config files: generated valid configs load, one mutation gives one error at its
/// path, and the YAML and TOML spellings of one config decode to the same value.
module CcRelay.Core.Properties.ConfigFileProperties

open System
open System.Text
open CcRelay.Core
open CcRelay.Host.Configuration
open FsCheck
open FsCheck.FSharp
open Xunit

// ---------------------------
// A valid config, as a spec (what the decoder should give back) and as a document
// ---------------------------

type private KeySpec = {
    Key: string
    RpmLimit: int option
    ItpmLimit: int option
    Priority: int option
    Weight: int option
}

type private ProviderSpec = {
    Name: string
    Type: ProviderType
    BaseUrl: string option
    Keys: KeySpec list
    ModelMapping: (string * string) list
    Models: string list
}

type private Spec = {
    Host: string
    Port: int
    TimeoutMs: int option
    MaxBodyBytes: int64 option
    FirstByteTimeoutMs: int option
    Providers: ProviderSpec list
    Level: string
    Format: string option
    Strategy: string option
    MaxAttempts: int option
    /// `routing.model_mapping`: model pattern → provider name.
    RoutingRules: (string * string) list
    DefaultProvider: string option
}

let private nowhere: Position = { Line = 1; Column = 1 }

let private text (value: string) : ConfigNode =
    Scalar(ScalarValue.String value, nowhere)

let private integer (value: int64) : ConfigNode =
    Scalar(ScalarValue.Integer value, nowhere)

let private mapping (entries: (string * ConfigNode) list) : ConfigNode =
    Mapping(entries |> List.map (fun (k, v) -> { Key = k; KeyAt = nowhere; Value = v }), nowhere)

let private sequence (items: ConfigNode list) : ConfigNode = Sequence(items, nowhere)

let private optional (key: string) (value: 'Value option) (node: 'Value -> ConfigNode) : (string * ConfigNode) list =
    value |> Option.map (fun v -> key, node v) |> Option.toList

let private keyNode (key: KeySpec) : ConfigNode =
    mapping [
        "key", text key.Key
        yield! optional "rpm_limit" key.RpmLimit (int64 >> integer)
        yield! optional "itpm_limit" key.ItpmLimit (int64 >> integer)
        yield! optional "priority" key.Priority (int64 >> integer)
        yield! optional "weight" key.Weight (int64 >> integer)
    ]

let private providerNode (provider: ProviderSpec) : ConfigNode =
    mapping [
        "name", text provider.Name
        "type", text (ProviderType.wireName provider.Type)
        yield! optional "base_url" provider.BaseUrl text
        if not provider.Keys.IsEmpty then
            "keys", sequence (provider.Keys |> List.map keyNode)
        if not provider.ModelMapping.IsEmpty then
            "model_mapping", mapping (provider.ModelMapping |> List.map (fun (k, v) -> k, text v))
        if not provider.Models.IsEmpty then
            "models", sequence (provider.Models |> List.map text)
    ]

let private listenText (spec: Spec) : string =
    if spec.Host.Contains ':' then
        $"[%s{spec.Host}]:%d{spec.Port}"
    else
        $"%s{spec.Host}:%d{spec.Port}"

let private document (spec: Spec) : ConfigNode =
    mapping [
        "server",
        mapping [
            "listen", text (listenText spec)
            yield! optional "timeout_ms" spec.TimeoutMs (int64 >> integer)
            yield! optional "max_body_bytes" spec.MaxBodyBytes integer
            yield! optional "first_byte_timeout_ms" spec.FirstByteTimeoutMs (int64 >> integer)
        ]
        "providers", sequence (spec.Providers |> List.map providerNode)
        "logging", mapping [ "level", text spec.Level; yield! optional "format" spec.Format text ]
        "routing",
        mapping [
            yield! optional "strategy" spec.Strategy text
            yield! optional "max_attempts" spec.MaxAttempts (int64 >> integer)
            if not spec.RoutingRules.IsEmpty then
                "model_mapping", mapping (spec.RoutingRules |> List.map (fun (k, v) -> k, text v))
            yield! optional "default_provider" spec.DefaultProvider text
        ]
    ]

// ---------------------------
// Generators
// ---------------------------

let private word: Gen<string> =
    Gen.elements [ 'a' .. 'z' ] |> Gen.arrayOfLength 6 |> Gen.map String

let private maybe (g: Gen<'Value>) : Gen<'Value option> =
    Gen.frequency [ 1, Gen.constant None; 2, Gen.map Some g ]

let private keySpec (value: string) : Gen<KeySpec> =
    gen {
        let! rpm = maybe (Gen.choose (0, 100_000))
        let! itpm = maybe (Gen.choose (0, 1_000_000))
        let! priority = maybe (Gen.choose (0, 2))
        let! weight = maybe (Gen.choose (0, 100))

        return {
            Key = value
            RpmLimit = rpm
            ItpmLimit = itpm
            Priority = priority
            Weight = weight
        }
    }

let private models: string list = [ "claude-opus-4-6"; "claude-sonnet-4-6"; "claude-haiku-4-5"; "glm-5" ]

let private providerSpec (index: int) (name: string) : Gen<ProviderSpec> =
    gen {
        // the cloud types need settings of their own (region, project, resource): ConfigTests covers them
        let! providerType =
            Gen.elements (ProviderType.all |> List.filter (ProviderType.isCloud >> not))

        // Gemini on AI Studio (no gcp_project_id) needs an API key
        let! keyCount = Gen.choose ((if providerType = ProviderType.Gemini then 1 else 0), 3)

        let! keys =
            [ 0 .. keyCount - 1 ]
            |> List.map (fun k -> keySpec $"sk-%d{index}-%d{k}")
            |> Gen.sequenceToList

        let! mapped = Gen.subListOf models
        let! targets = Gen.listOfLength mapped.Length word
        let! listed = Gen.subListOf models

        let! baseUrl =
            match providerType with
            | ProviderType.AnthropicCompatible ->
                Gen.elements [ "https://llm.example.com"; "http://127.0.0.1:9000/v1" ]
                |> Gen.map Some
            | _ -> Gen.elements [ None; Some "https://proxy.example.com/anthropic" ]

        return {
            Name = name
            Type = providerType
            BaseUrl = baseUrl
            Keys = keys
            ModelMapping = List.zip mapped targets
            Models = listed
        }
    }

let private names: string list = [ "main"; "backup"; "glm"; "local"; "mini"; "p-5"; "edge_1" ]

let private spec: Gen<Spec> =
    gen {
        let! host =
            Gen.elements [ "127.0.0.1"; "localhost"; "0.0.0.0"; "::1"; "relay.internal" ]

        let! port = Gen.choose (0, 65535)
        let! timeoutMs = maybe (Gen.choose (0, 86_400_000))
        let! maxBodyBytes = maybe (Gen.choose (0, 1_000_000_000) |> Gen.map int64)
        let! firstByte = maybe (Gen.choose (1, 3_600_000))
        let! count = Gen.choose (1, 4)
        let! chosen = Gen.shuffle names |> Gen.map (Array.truncate count >> List.ofArray)
        let! providers = chosen |> List.mapi providerSpec |> Gen.sequenceToList
        let! level = Gen.elements [ "debug"; "info"; "warn"; "error" ]
        let! format = maybe (Gen.elements [ "json"; "text"; "console"; "pretty" ])

        let providerNames = providers |> List.map _.Name
        let! patterns = Gen.subListOf [ "claude-opus*"; "claude-*"; "glm"; "*" ]
        let! targets = Gen.listOfLength patterns.Length (Gen.elements providerNames)
        let rules = List.zip patterns targets

        // model_based needs routing.model_mapping; the others need nothing more.
        let! strategy =
            RoutingStrategy.all
            |> List.map fst
            |> List.filter (fun s -> s <> "model_based" || not rules.IsEmpty)
            |> Gen.elements
            |> maybe

        let! maxAttempts = maybe (Gen.choose (1, 100))
        let! defaultProvider = maybe (Gen.elements providerNames)

        return {
            Host = host
            Port = port
            TimeoutMs = timeoutMs
            MaxBodyBytes = maxBodyBytes
            FirstByteTimeoutMs = firstByte
            Providers = providers
            Level = level
            Format = format
            Strategy = strategy
            MaxAttempts = maxAttempts
            RoutingRules = rules
            DefaultProvider = defaultProvider
        }
    }

let private lookup (_: string) : string option = None

let private levelName (level: LogLevel) : string =
    match level with
    | LogLevel.Debug -> "debug"
    | LogLevel.Info -> "info"
    | LogLevel.Warn -> "warn"
    | LogLevel.Error -> "error"

let private describe (load: ConfigLoad) : string =
    match load with
    | Loaded(_, warnings) -> $"loaded; warnings %A{warnings}"
    | Invalid(errors, warnings) -> $"invalid: %A{errors}; warnings %A{warnings}"

[<Fact>]
let ``generated valid configs are accepted`` () =
    Check.quick
        200
        (Prop.forAll (Check.arb spec) (fun spec ->
            let load = ConfigDecode.decode lookup (document spec)

            match load with
            | Loaded(config, _) ->
                config.Providers |> List.map _.Name = (spec.Providers |> List.map _.Name)
                && config.Providers |> List.map _.Type = (spec.Providers |> List.map _.Type)
                && config.Providers |> List.map _.Keys.Length = (spec.Providers |> List.map _.Keys.Length)
                && config.Providers |> List.map (fun p -> p.Keys |> List.map _.Key) =
                    (spec.Providers |> List.map (fun p -> p.Keys |> List.map _.Key))
                && config.Providers |> List.map _.ModelMapping =
                    (spec.Providers |> List.map (fun p -> Map.ofList p.ModelMapping))
                && config.Server.Listen = { Host = spec.Host; Port = spec.Port }
                && levelName config.Logging.Level = spec.Level
                && config.Server.TimeoutMs = defaultArg spec.TimeoutMs Config.defaultServer.TimeoutMs
                && config.Routing.MaxAttempts = defaultArg spec.MaxAttempts Config.defaultRouting.MaxAttempts
                && (spec.Strategy
                    |> Option.forall (fun s -> RoutingStrategy.wireName config.Routing.Strategy = s))
                && config.Routing.ModelRules |> List.map (fun r -> r.Pattern, r.Provider) = spec.RoutingRules
                && config.Routing.DefaultProvider = spec.DefaultProvider
            | Invalid _ -> false
            |> Prop.label (describe load)))

// ---------------------------
// One mutation
// ---------------------------

/// A step of a path into the document.
type private Step =
    | Key of string
    | Index of int

let private pathText (steps: Step list) : string =
    let out = StringBuilder()

    for step in steps do
        match step with
        | Key key when out.Length = 0 -> out.Append key |> ignore
        | Key key -> out.Append('.').Append(key) |> ignore
        | Index i -> out.Append($"[%d{i}]") |> ignore

    out.ToString()

/// Sets the value at `steps`, adding the last key to its mapping when it is absent.
let rec private setAt (steps: Step list) (value: ConfigNode) (node: ConfigNode) : ConfigNode =
    match steps, node with
    | [], _ -> value
    | Key key :: rest, Mapping(entries, at) ->
        if entries |> List.exists (fun e -> e.Key = key) then
            Mapping(
                entries
                |> List.map (fun e ->
                    if e.Key = key then
                        {
                            e with
                                Value = setAt rest value e.Value
                        }
                    else
                        e),
                at
            )
        else
            Mapping(
                entries
                @ [
                    {
                        Key = key
                        KeyAt = nowhere
                        Value = setAt rest value (mapping [])
                    }
                ],
                at
            )
    | Index i :: rest, Sequence(items, at) ->
        Sequence(items |> List.mapi (fun j item -> if i = j then setAt rest value item else item), at)
    | _ -> failwith $"no %A{steps} in %A{node}"

let private plain (value: string) : ConfigNode =
    Scalar(ScalarValue.Plain value, nowhere)

/// One change to a valid document, and the path of the one error it must cause.
type private Mutation = {
    Steps: Step list
    Value: ConfigNode
    Expected: string
}

let private at (steps: Step list) (value: ConfigNode) : Mutation = {
    Steps = steps
    Value = value
    Expected = pathText steps
}

/// Every single mutation of a spec's document that must give exactly one error.
let private mutations (spec: Spec) : Mutation list = [
    let wrongTypes = [ plain "abc"; mapping [ "n", integer 1L ]; sequence [ integer 1L ] ]

    for wrong in wrongTypes do
        at [ Key "server"; Key "timeout_ms" ] wrong
        at [ Key "routing"; Key "max_attempts" ] wrong

    at [ Key "logging"; Key "level" ] (mapping [])
    at [ Key "logging"; Key "format" ] (sequence [])
    at [ Key "server"; Key "listen" ] (text "nowhere")
    at [ Key "server"; Key "listen" ] (text "127.0.0.1:70000")
    at [ Key "server"; Key "timeout_ms" ] (integer -1L)
    at [ Key "server"; Key "max_body_bytes" ] (integer -1L)
    at [ Key "server"; Key "first_byte_timeout_ms" ] (integer 0L)
    at [ Key "routing"; Key "max_attempts" ] (integer 0L)
    at [ Key "routing"; Key "max_attempts" ] (integer 101L)
    at [ Key "logging"; Key "level" ] (text "loud")
    at [ Key "logging"; Key "format" ] (text "xml")
    at [ Key "routing"; Key "strategy" ] (text "fastest")
    at [ Key "routing"; Key "default_provider" ] (text "nosuch")

    // model_based without rules: reported where the rules are missing.
    if spec.RoutingRules.IsEmpty then
        {
            Steps = [ Key "routing"; Key "strategy" ]
            Value = text "model_based"
            Expected = "routing.model_mapping"
        }

    let referenced =
        (spec.RoutingRules |> List.map snd) @ Option.toList spec.DefaultProvider
        |> Set.ofList

    for i, provider in List.indexed spec.Providers do
        let p = [ Key "providers"; Index i ]
        at (p @ [ Key "type" ]) (text "bogus")
        at (p @ [ Key "type" ]) (mapping [])
        at (p @ [ Key "enabled" ]) (plain "maybe")
        at (p @ [ Key "base_url" ]) (text "ftp://example.com")
        at (p @ [ Key "keys" ]) (mapping [])

        {
            Steps = p @ [ Key "models" ]
            Value = sequence [ text "" ]
            Expected = pathText (p @ [ Key "models"; Index 0 ])
        }

        at (p @ [ Key "priority" ]) (integer -5L)

        // A provider routing refers to keeps its name: a changed name leaves the reference dangling too.
        if not (referenced.Contains provider.Name) then
            at (p @ [ Key "name" ]) (mapping [])
            at (p @ [ Key "name" ]) (text "")

        for k, _ in List.indexed provider.Keys do
            let ks = p @ [ Key "keys"; Index k ]
            at (ks @ [ Key "priority" ]) (integer 7L)
            at (ks @ [ Key "rpm_limit" ]) (plain "abc")
            at (ks @ [ Key "rpm_limit" ]) (mapping [ "n", integer 1L ])
            at (ks @ [ Key "weight" ]) (integer -1L)
            at (ks @ [ Key "key" ]) (mapping [])

            if ConfigKeys.requiresKey provider.Type then
                at (ks @ [ Key "key" ]) (text "")

            // The same key twice: reported at the later one.
            for earlier in provider.Keys |> List.take k do
                at (ks @ [ Key "key" ]) (text earlier.Key)

    // A repeated name is reported at the later entry (the earlier one keeps the name).
    for i, first in List.indexed spec.Providers do
        for j, later in List.indexed spec.Providers do
            if j > i && not (referenced.Contains later.Name) then
                at [ Key "providers"; Index j; Key "name" ] (text first.Name)
]

let private mutated: Gen<Spec * Mutation> =
    gen {
        let! spec = spec
        let! mutation = Gen.elements (mutations spec)
        return spec, mutation
    }

[<Fact>]
let ``a single mutation yields exactly one error at the mutation's path`` () =
    Check.quick
        500
        (Prop.forAll (Check.arb mutated) (fun (spec, mutation) ->
            let load =
                ConfigDecode.decode lookup (document spec |> setAt mutation.Steps mutation.Value)

            match load with
            | Invalid([ error ], _) -> error.Path = mutation.Expected
            | _ -> false
            |> Prop.label $"expected one error at %s{mutation.Expected}; %s{describe load}"))

// ---------------------------
// YAML and TOML renderings
// ---------------------------

/// A double-quoted string, escaped the way YAML and TOML basic strings both read.
let private quoted (value: string) : string =
    let out = StringBuilder("\"")

    for c in value do
        match c with
        | '"' -> out.Append "\\\"" |> ignore
        | '\\' -> out.Append "\\\\" |> ignore
        | c when c < ' ' || c = '\u007F' -> out.Append $"\\u%04X{int c}" |> ignore
        | c -> out.Append c |> ignore

    out.Append('"').ToString()

let private scalarText (value: ScalarValue) : string =
    match value with
    | ScalarValue.String s -> quoted s
    | ScalarValue.Integer n -> string n
    | ScalarValue.Boolean b -> if b then "true" else "false"
    | ScalarValue.Plain s -> s
    | other -> failwith $"not generated: %A{other}"

/// Block-style YAML: every key and string quoted, integers plain.
let rec private renderYaml (out: StringBuilder) (indent: int) (node: ConfigNode) : unit =
    let pad = String(' ', indent)

    let nested (value: ConfigNode) =
        match value with
        | Scalar(v, _) -> out.Append(' ').Append(scalarText v).Append('\n') |> ignore
        | Mapping([], _) -> out.Append(" {}\n") |> ignore
        | Sequence([], _) -> out.Append(" []\n") |> ignore
        | other ->
            out.Append('\n') |> ignore
            renderYaml out (indent + 2) other

    match node with
    | Mapping(entries, _) ->
        for e in entries do
            out.Append(pad).Append(quoted e.Key).Append(':') |> ignore
            nested e.Value
    | Sequence(items, _) ->
        for item in items do
            out.Append(pad).Append('-') |> ignore
            nested item
    | Scalar(v, _) -> out.Append(pad).Append(scalarText v).Append('\n') |> ignore

let private yaml (document: ConfigNode) : string =
    let out = StringBuilder()
    renderYaml out 0 document
    out.ToString()

let rec private tomlInline (node: ConfigNode) : string =
    match node with
    | Scalar(v, _) -> scalarText v
    | Sequence(items, _) -> "[" + String.Join(", ", items |> List.map tomlInline) + "]"
    | Mapping(entries, _) ->
        "{ "
        + String.Join(", ", entries |> List.map (fun e -> quoted e.Key + " = " + tomlInline e.Value))
        + " }"

/// TOML with tables for mappings and arrays of tables for lists of mappings; other values inline.
let rec private renderToml (out: StringBuilder) (path: string list) (entries: MappingEntry list) : unit =
    let isTables (node: ConfigNode) =
        match node with
        | Sequence(_ :: _ as items, _) -> items |> List.forall _.IsMapping
        | _ -> false

    let headed, inline' =
        entries |> List.partition (fun e -> e.Value.IsMapping || isTables e.Value)

    for e in inline' do
        out.Append(quoted e.Key).Append(" = ").Append(tomlInline e.Value).Append('\n')
        |> ignore

    for e in headed do
        let path = path @ [ quoted e.Key ]
        let name = String.Join(".", path)

        match e.Value with
        | Mapping(inner, _) ->
            out.Append("\n[").Append(name).Append("]\n") |> ignore
            renderToml out path inner
        | Sequence(items, _) ->
            for item in items do
                match item with
                | Mapping(inner, _) ->
                    out.Append("\n[[").Append(name).Append("]]\n") |> ignore
                    renderToml out path inner
                | _ -> ()
        | _ -> ()

let private toml (document: ConfigNode) : string =
    let out = StringBuilder()

    match document with
    | Mapping(entries, _) -> renderToml out [] entries
    | _ -> ()

    out.ToString()

/// Warnings without their positions, in a stable order.
let private unplaced (warnings: ConfigIssue list) : (string * string) list =
    warnings |> List.map (fun w -> w.Path, w.Message) |> List.sort

[<Fact>]
let ``YAML and TOML renderings of the same generated config decode to the same value`` () =
    Check.quick
        200
        (Prop.forAll (Check.arb spec) (fun spec ->
            let doc = document spec
            let yamlText = yaml doc
            let tomlText = toml doc

            let fromYaml =
                match YamlConfigReader.TryRead yamlText with
                | true, node, _ -> Ok(ConfigDecode.decode lookup node)
                | false, _, errors -> Error $"YAML rejected: %A{errors}"

            let fromToml =
                match Toml.parse tomlText with
                | Ok node -> Ok(ConfigDecode.decode lookup node)
                | Error e -> Error $"TOML rejected at %d{e.Position.Line}:%d{e.Position.Column}: %s{e.Message}"

            match fromYaml, fromToml, ConfigDecode.decode lookup doc with
            | Ok(Loaded(a, aw)), Ok(Loaded(b, bw)), Loaded(direct, _) ->
                a = b && a = direct && unplaced aw = unplaced bw
            | _ -> false
            |> Prop.label $"YAML:\n%s{yamlText}\nTOML:\n%s{tomlText}\nfrom YAML %A{fromYaml}\nfrom TOML %A{fromToml}"))
