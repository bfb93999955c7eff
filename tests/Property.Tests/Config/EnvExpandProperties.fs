module CcRelay.Core.Properties.EnvExpandProperties

open CcRelay.Core
open FsCheck
open FsCheck.FSharp
open Xunit

/// One piece of a generated value, with the text the expansion must produce for it.
type private Piece =
    | Literal of string
    | Escape
    | Defined of Name: string
    | UnsetWithDefault of Name: string * Default: string

let private environment: Map<string, string> =
    Map.ofList [ "A", "alpha"; "B_2", "x y"; "_C", ""; "LONG_NAME", "sk-ant-123" ]

let private lookup: string -> string option = environment.TryFind

/// Text with no `$` (and so nothing to expand), including braces and colons.
let private noDollar: Gen<string> =
    Gen.elements [ 'a'; 'Z'; '0'; ' '; '{'; '}'; ':'; '-'; '?'; '/'; 'é' ]
    |> Gen.arrayOf
    |> Gen.map System.String

/// Any string, including `$`, braces and control characters (FsCheck's default, without null).
let private anyText: Gen<string> =
    ArbMap.defaults
    |> ArbMap.generate<string | null>
    |> Gen.map (fun s ->
        match s with
        | null -> ""
        | s -> s)

let private validName: Gen<string> =
    gen {
        let! first = Gen.elements ('_' :: [ 'A' .. 'Z' ] @ [ 'a' .. 'z' ])
        let! rest = Gen.elements ('_' :: [ 'A' .. 'Z' ] @ [ '0' .. '9' ]) |> Gen.listOf
        return System.String(first :: rest |> List.toArray)
    }

let private unsetName: Gen<string> =
    validName |> Gen.filter (fun n -> not (environment.ContainsKey n))

/// Defaults are plain text without `$` or `}` (a `}` would close the reference).
let private defaultText: Gen<string> =
    noDollar |> Gen.map (fun s -> s.Replace("}", ""))

let private piece: Gen<Piece> =
    Gen.oneof [
        noDollar |> Gen.map Literal
        Gen.constant Escape
        environment.Keys |> Seq.toList |> Gen.elements |> Gen.map Defined
        Gen.map2 (fun n d -> UnsetWithDefault(n, d)) unsetName defaultText
    ]

let private source (pieces: Piece list) : string =
    pieces
    |> List.map (function
        | Literal s -> s
        | Escape -> "$$"
        | Defined name -> "${" + name + "}"
        | UnsetWithDefault(name, d) -> "${" + name + ":-" + d + "}")
    |> String.concat ""

/// The oracle: what each piece means, concatenated.
let private meaning (pieces: Piece list) : string =
    pieces
    |> List.map (function
        | Literal s -> s
        | Escape -> "$"
        | Defined name -> environment[name]
        | UnsetWithDefault(_, d) -> d)
    |> String.concat ""

[<Fact>]
let ``text without a dollar sign is returned unchanged`` () =
    Check.property (Prop.forAll (Check.arb noDollar) (fun text -> EnvExpand.expand lookup text = Ok text))

[<Fact>]
let ``any string survives escaping every dollar as $$`` () =
    Check.property (
        Prop.forAll (Check.arb anyText) (fun text -> EnvExpand.expand lookup (text.Replace("$", "$$")) = Ok text)
    )

[<Fact>]
let ``a defined variable expands to its value, wherever it stands`` () =
    let case =
        gen {
            let! before = noDollar
            let! after = noDollar
            let! name = validName
            let! value = anyText
            return before, name, value, after
        }

    Check.property (
        Prop.forAll (Check.arb case) (fun (before, name, value, after) ->
            let lookup = fun n -> if n = name then Some value else None
            EnvExpand.expand lookup (before + "${" + name + "}" + after) = Ok(before + value + after))
    )

[<Fact>]
let ``expansion means each piece in turn (the oracle)`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.listOf piece)) (fun pieces ->
            EnvExpand.expand lookup (source pieces) = Ok(meaning pieces))
    )

[<Fact>]
let ``no ${ is left unexpanded unless it was escaped`` () =
    let unescaped = piece |> Gen.filter (fun p -> p <> Escape) |> Gen.listOf

    Check.property (
        Prop.forAll (Check.arb unescaped) (fun pieces ->
            match EnvExpand.expand lookup (source pieces) with
            | Ok text -> not (text.Contains "${")
            | Error _ -> false)
    )

[<Fact>]
let ``a dollar sign not followed by { or $ is kept as written`` () =
    let lone =
        gen {
            let! parts = noDollar |> Gen.listOf
            let! follower = Gen.elements [ "HOME"; "x"; "1"; " "; "-" ]
            return (parts |> String.concat ("$" + follower)) + "$"
        }

    Check.property (Prop.forAll (Check.arb lone) (fun text -> EnvExpand.expand lookup text = Ok text))
