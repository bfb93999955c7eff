namespace CcRelay.Core

/// A place in a config file, 1-based.
type Position = { Line: int; Column: int }

/// A scalar as the file wrote it. YAML plain scalars stay untyped until the schema says what it wants,
/// so `key: 0123` can be a string and `rpm_limit: 60` an integer.
[<RequireQualifiedAccess>]
type ScalarValue =
    /// A quoted YAML scalar or a TOML string.
    | String of Value: string
    /// A YAML plain (unquoted) scalar; typed by the decoder with YAML 1.2 core-schema rules.
    | Plain of Value: string
    | Integer of Value: int64
    | Float of Value: float
    | Boolean of Value: bool
    | Null
    /// TOML date-time kinds, kept as their text, normalised: `T` between date and time, upper-case `Z`
    /// (`1979-05-27 07:32:00z` is `1979-05-27T07:32:00Z`); the fraction of a second stays as written.
    | OffsetDateTime of Text: string
    | LocalDateTime of Text: string
    | LocalDate of Text: string
    | LocalTime of Text: string

/// The neutral tree both config formats (YAML, TOML) parse into; it keeps positions for error messages.
type ConfigNode =
    | Scalar of Value: ScalarValue * At: Position
    | Sequence of Items: ConfigNode list * At: Position
    | Mapping of Entries: MappingEntry list * At: Position

/// One `key: value` entry of a mapping, in file order.
and MappingEntry = {
    Key: string
    KeyAt: Position
    Value: ConfigNode
}

/// Helpers over the node tree.
[<RequireQualifiedAccess>]
module ConfigNode =

    /// Where a node starts.
    let position (node: ConfigNode) : Position =
        match node with
        | Scalar(_, at)
        | Sequence(_, at)
        | Mapping(_, at) -> at

    /// An empty mapping at line 1, column 1: the document of an empty file.
    let empty: ConfigNode = Mapping([], { Line = 1; Column = 1 })

/// The C#-facing surface: the host's YAML and TOML readers build and read nodes with these.
type ConfigNode with

    /// An empty mapping at line 1, column 1 (`ConfigNode.empty`).
    static member Empty: ConfigNode = ConfigNode.empty

    /// Where the node starts (`ConfigNode.position`).
    member this.Position: Position = ConfigNode.position this

    /// A sequence of these items, in order.
    static member SequenceOf(items: ConfigNode seq, at: Position) : ConfigNode = Sequence(List.ofSeq items, at)

    /// A mapping of these entries, in file order.
    static member MappingOf(entries: MappingEntry seq, at: Position) : ConfigNode = Mapping(List.ofSeq entries, at)
