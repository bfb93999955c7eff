/// The official toml-test suite (`tests/fixtures/toml-test`, MIT), every file that `files-toml-1.0.0` lists: one
/// xunit case per file, so the runner's counts are the suite's pass counts.
module CcRelay.Core.Tests.TomlSuiteTests

open System
open System.Globalization
open System.IO
open System.Text.Json
open CcRelay.Core
open Xunit

/// `tests/fixtures/toml-test/tests`, found by walking up from the test binaries to the repository.
let private suite: Lazy<string> =
    lazy
        (let rec find (dir: DirectoryInfo | null) =
            match dir with
            | null -> failwith $"tests/fixtures/toml-test not found above %s{AppContext.BaseDirectory}"
            | dir ->
                let candidate =
                    Path.Combine(dir.FullName, "tests", "fixtures", "toml-test", "tests")

                if File.Exists(Path.Combine(candidate, "files-toml-1.0.0")) then
                    candidate
                else
                    find dir.Parent

         find (DirectoryInfo AppContext.BaseDirectory))

/// The `.toml` files of `files-toml-1.0.0` under `folder`, as theory rows.
let private listed (folder: string) : obj array seq =
    File.ReadAllLines(Path.Combine(suite.Value, "files-toml-1.0.0"))
    |> Seq.filter (fun f ->
        f.StartsWith(folder, StringComparison.Ordinal)
        && f.EndsWith(".toml", StringComparison.Ordinal))
    |> Seq.map (fun f -> [| f :> obj |])

let validFiles: obj array seq = listed "valid/"

let invalidFiles: obj array seq = listed "invalid/"

// ---------------------------
// The typed-JSON comparer
// ---------------------------

/// A toml-test leaf: an object with exactly a string "type" and a string "value".
let private leaf (json: JsonElement) : (string * string) option =
    if json.ValueKind <> JsonValueKind.Object then
        None
    else
        let properties = json.EnumerateObject() |> List.ofSeq

        match properties with
        | [ a; b ] when
            set [ a.Name; b.Name ] = set [ "type"; "value" ]
            && a.Value.ValueKind = JsonValueKind.String
            && b.Value.ValueKind = JsonValueKind.String
            ->
            Some(json.GetProperty("type").GetString() |> string, json.GetProperty("value").GetString() |> string)
        | _ -> None

/// A float as toml-test writes it ("inf", "-inf", "nan" or a number).
let private parseFloat (text: string) : float =
    match text with
    | "inf"
    | "+inf" -> Double.PositiveInfinity
    | "-inf" -> Double.NegativeInfinity
    | "nan"
    | "+nan"
    | "-nan" -> Double.NaN
    | _ -> Double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture)

/// A date-time for comparison: upper case, `T` between date and time, no trailing zeros in the fraction
/// (toml-test writes `.600` for `.6`).
let private normaliseDateTime (text: string) : string =
    let text = text.ToUpperInvariant()

    let text =
        if text.Length > 10 && text[10] = ' ' then
            text.Substring(0, 10) + "T" + text.Substring 11
        else
            text

    match text.IndexOf '.' with
    | -1 -> text
    | dot ->
        let mutable stop = dot + 1

        while stop < text.Length && Char.IsAsciiDigit text[stop] do
            stop <- stop + 1

        let fraction = text.Substring(dot + 1, stop - dot - 1).TrimEnd '0'
        let fraction = if fraction = "" then "" else "." + fraction
        text.Substring(0, dot) + fraction + text.Substring stop

/// Whether a scalar equals a toml-test leaf.
let private scalarMatches (value: ScalarValue) (kind: string) (text: string) : bool =
    match value, kind with
    | ScalarValue.String s, "string" -> s = text
    | ScalarValue.Integer i, "integer" -> i = Int64.Parse(text, CultureInfo.InvariantCulture)
    | ScalarValue.Float f, "float" ->
        let expected = parseFloat text
        (Double.IsNaN f && Double.IsNaN expected) || f = expected
    | ScalarValue.Boolean b, "bool" -> (if b then "true" else "false") = text
    | ScalarValue.OffsetDateTime d, "datetime"
    | ScalarValue.LocalDateTime d, "datetime-local"
    | ScalarValue.LocalDate d, "date-local"
    | ScalarValue.LocalTime d, "time-local" -> normaliseDateTime d = normaliseDateTime text
    | _ -> false

/// Every difference between a node and the expected typed JSON, with its key path.
let rec private differences (path: string) (node: ConfigNode) (json: JsonElement) : string list =
    match node, leaf json with
    | Scalar(value, _), Some(kind, text) ->
        if scalarMatches value kind text then
            []
        else
            [ $"%s{path}: got %A{value}, expected %s{kind} %s{text}" ]
    | Mapping(entries, _), None when json.ValueKind = JsonValueKind.Object ->
        let expected =
            json.EnumerateObject() |> Seq.map (fun p -> p.Name, p.Value) |> Map.ofSeq

        let got = entries |> List.map _.Key

        let missing =
            expected
            |> Map.keys
            |> Seq.filter (fun k -> not (List.contains k got))
            |> Seq.map (fun k -> $"%s{path}.%s{k}: missing")
            |> List.ofSeq

        let duplicates =
            got
            |> List.countBy id
            |> List.filter (fun (_, n) -> n > 1)
            |> List.map (fun (k, _) -> $"%s{path}.%s{k}: duplicated")

        let compared =
            entries
            |> List.collect (fun e ->
                match expected.TryFind e.Key with
                | Some value -> differences $"%s{path}.%s{e.Key}" e.Value value
                | None -> [ $"%s{path}.%s{e.Key}: unexpected" ])

        missing @ duplicates @ compared
    | Sequence(items, _), None when json.ValueKind = JsonValueKind.Array ->
        let expected = json.EnumerateArray() |> List.ofSeq

        if expected.Length <> items.Length then
            [ $"%s{path}: %d{items.Length} items, expected %d{expected.Length}" ]
        else
            List.zip items expected
            |> List.mapi (fun i (item, value) -> differences $"%s{path}[%d{i}]" item value)
            |> List.concat
    | _ -> [ $"%s{path}: got %A{node}, expected %s{json.GetRawText()}" ]

/// Every position in the tree is a real 1-based place.
let rec private positionsValid (node: ConfigNode) : bool =
    let valid (p: Position) = p.Line >= 1 && p.Column >= 1

    valid (ConfigNode.position node)
    && match node with
       | Scalar _ -> true
       | Sequence(items, _) -> items |> List.forall positionsValid
       | Mapping(entries, _) -> entries |> List.forall (fun e -> valid e.KeyAt && positionsValid e.Value)

// ---------------------------
// The cases
// ---------------------------

/// Reads a suite file as bytes: invalid UTF-8 is part of what is tested.
let private parseFile (file: string) : Result<ConfigNode, TomlError> =
    File.ReadAllBytes(Path.Combine(suite.Value, file)) |> Toml.parseUtf8

[<Theory>]
[<MemberData(nameof validFiles)>]
let ``valid file decodes to its JSON`` (file: string) =
    match parseFile file with
    | Error e -> failwith $"rejected at %d{e.Position.Line}:%d{e.Position.Column}: %s{e.Message}"
    | Ok document ->
        let json =
            JsonDocument.Parse(File.ReadAllText(Path.Combine(suite.Value, file[.. file.Length - 6] + ".json")))

        let found = differences "(root)" document json.RootElement
        Assert.True(List.isEmpty found, String.concat Environment.NewLine found)
        Assert.True(positionsValid document, "a node has no position")

[<Theory>]
[<MemberData(nameof invalidFiles)>]
let ``invalid file is rejected with a message and a position`` (file: string) =
    match parseFile file with
    | Ok document -> failwith $"accepted: %A{document}"
    | Error e ->
        Assert.False(String.IsNullOrWhiteSpace e.Message)
        Assert.True(e.Position.Line >= 1 && e.Position.Column >= 1, $"position %A{e.Position}")

[<Fact>]
let ``the suite lists every file of TOML 1.0.0`` () =
    // Guards against a truncated checkout passing vacuously.
    Assert.True(Seq.length validFiles >= 200, "valid files")
    Assert.True(Seq.length invalidFiles >= 450, "invalid files")
