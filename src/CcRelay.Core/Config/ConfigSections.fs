namespace CcRelay.Core

/// The expected shape of a section this version accepts but does not act on yet: enough to catch a typo
/// or a wrong type today, so a config that loads now keeps loading when the section becomes effective.
[<RequireQualifiedAccess>]
type internal Shape =
    | Boolean
    | Integer of Minimum: int64
    | Text
    | Choice of Allowed: string list
    | Listen
    | Texts
    | TextMap
    | Section of Keys: (string * Shape) list

/// Sections accepted but not effective in this version: `cache`
/// (seed-cc-relay.md §3.2). Each present section gets one warning saying so.
[<RequireQualifiedAccess>]
module internal ConfigSections =

    let private cache: (string * Shape) list = [
        "mode", Shape.Choice [ "single"; "ha"; "disabled" ]
        "ristretto",
        Shape.Section [
            "num_counters", Shape.Integer 0L
            "max_cost", Shape.Integer 0L
            "buffer_items", Shape.Integer 0L
        ]
        "olric",
        Shape.Section [
            "embedded", Shape.Boolean
            "bind_addr", Shape.Text
            "dmap_name", Shape.Text
            "environment", Shape.Choice [ "local"; "lan"; "wan" ]
            "addresses", Shape.Texts
            "peers", Shape.Texts
            "replica_count", Shape.Integer 0L
            "read_quorum", Shape.Integer 0L
            "write_quorum", Shape.Integer 0L
            "member_count_quorum", Shape.Integer 0L
            // A Go duration (`5s`): kept as text until the cache exists.
            "leave_timeout", Shape.Text
        ]
    ]

    /// A listen address, as `server.listen` reads it.
    let listen: Read<ListenAddress option> =
        fun cursor node ->
            ConfigRead.optionalString cursor node
            |> Decoded.bind (fun text ->
                match text with
                | None -> Decoded.none
                | Some text ->
                    match ListenAddress.TryParse text with
                    | Ok address -> Decoded.ok (Some address)
                    | Error message -> ConfigRead.fail cursor (ConfigNode.position node) message)

    /// Checks a node against a shape; the value is only whether the node was present.
    let rec private check (shape: Shape) : Read<unit option> =
        let ignoreValue (read: Read<'Value option>) : Read<unit option> =
            fun cursor node -> read cursor node |> Decoded.map (Option.map ignore)

        match shape with
        | Shape.Boolean -> ignoreValue ConfigRead.optionalBoolean
        | Shape.Integer minimum -> ignoreValue (ConfigRead.optionalInteger minimum System.Int64.MaxValue)
        | Shape.Text -> ignoreValue ConfigRead.optionalString
        | Shape.Choice allowed -> ignoreValue (ConfigRead.optionalChoice (allowed |> List.map (fun a -> a, a)))
        | Shape.Listen -> ignoreValue listen
        | Shape.Texts -> ignoreValue (ConfigRead.optionalList ConfigRead.nonEmptyString)
        | Shape.TextMap -> ignoreValue (ConfigRead.optionalMap ConfigRead.nonEmptyString)
        | Shape.Section keys ->
            fun cursor node ->
                ConfigRead.section (keys |> List.map fst) cursor node
                |> Decoded.bind (fun fields ->
                    keys
                    |> List.map (fun (key, inner) -> ConfigRead.field key (check inner) fields)
                    |> Decoded.sequence
                    |> Decoded.map (fun _ -> Some()))

    /// The sections, their shapes, and whether their problems are errors. They only warn, because nothing
    /// reads them yet (and `cache.mode` must never be required: seed §16 #11).
    let all: (string * Shape * bool) list = [ "cache", Shape.Section cache, false ]

    /// Checks one accepted-but-not-effective section and adds its one "not effective" warning.
    let decode (shape: Shape) (strict: bool) (cursor: Cursor) (entry: MappingEntry) : Decoded<unit> =
        let checkedShape = check shape cursor entry.Value |> Decoded.map ignore

        let checkedShape =
            if strict then
                checkedShape
            else
                // Softened problems must not lose the (unit) value, or the whole load would fail.
                checkedShape
                |> Decoded.soften "the section is not effective yet"
                |> Decoded.attempt
                |> Decoded.map ignore

        checkedShape
        |> Decoded.tell [
            {
                Severity = Severity.Warning
                Issue = ConfigRead.issue cursor entry.KeyAt "accepted but not effective in this version"
            }
        ]
