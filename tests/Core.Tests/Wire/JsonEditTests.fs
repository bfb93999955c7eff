module CcRelay.Core.Tests.JsonEditTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text

let private edit (text: string) (remove: string list) (prepend: (string * string) list) : string * string list =
    let prepend = prepend |> List.map (fun (name, value) -> name, bytes value)

    match JsonEdit.edit (ReadOnlySpan(bytes text)) remove prepend with
    | Ok(result, removed) -> Encoding.UTF8.GetString result, removed
    | Error e -> failwith $"expected an edit, got %s{e}"

let private isValidJson (text: string) : bool =
    try
        use _ = JsonDocument.Parse text
        true
    with :? JsonException ->
        false

[<Theory>]
[<InlineData("""{"model":"m","a":1,"b":2}""", """{"a":1,"b":2}""")>]
[<InlineData("""{"a":1,"model":"m","b":2}""", """{"a":1,"b":2}""")>]
[<InlineData("""{"a":1,"b":2,"model":"m"}""", """{"a":1,"b":2}""")>]
[<InlineData("""{"model":"m"}""", """{}""")>]
[<InlineData("""{ "model" : "m" }""", """{  }""")>]
[<InlineData("""{ "a" : 1 , "model" : {"x":[1,2]} }""", """{ "a" : 1 }""")>]
[<InlineData("""{ "model" : [] ,
  "a" : 1 }""",
             """{ "a" : 1 }""")>]
[<InlineData("{\n  \"a\": 1,\n  \"model\": \"m\",\n  \"b\": 2\n}", "{\n  \"a\": 1,\n  \"b\": 2\n}")>]
let ``a removed member takes one separating comma with it, in any position`` (body: string, expected: string) =
    let result, removed = edit body [ "model" ] []
    Assert.Equal(expected, result)
    Assert.Equal<string list>([ "model" ], removed)
    Assert.True(isValidJson result)

[<Theory>]
[<InlineData("""{"model":"m","stream":true,"a":1}""", """{"a":1}""")>]
[<InlineData("""{"a":1,"model":"m","stream":true}""", """{"a":1}""")>]
[<InlineData("""{"model":"m","a":1,"stream":true}""", """{"a":1}""")>]
[<InlineData("""{"model":"m","stream":true}""", """{}""")>]
[<InlineData("""{"stream":true,"a":1,"model":"m","b":2,"model":"n"}""", """{"a":1,"b":2}""")>]
let ``several removed members, repeated names included, leave valid JSON`` (body: string, expected: string) =
    let result, _ = edit body [ "model"; "stream" ] []
    Assert.Equal(expected, result)

[<Fact>]
let ``the removed names are reported once each, in body order; absent ones not at all`` () =
    let _, removed =
        edit """{"stream":true,"model":"m","model":"n"}""" [ "model"; "missing"; "stream" ] []

    Assert.Equal<string list>([ "stream"; "model" ], removed)

[<Fact>]
let ``an escaped name is matched by its value, a nested one is not touched`` () =
    let result, _ =
        edit """{"mod\u0065l":"m","metadata":{"model":"x"},"a":[{"model":1}]}""" [ "model" ] []

    Assert.Equal("""{"metadata":{"model":"x"},"a":[{"model":1}]}""", result)

[<Theory>]
[<InlineData("""{"a":1}""", """{"v":"x","w":[1],"a":1}""")>]
[<InlineData("""{}""", """{"v":"x","w":[1]}""")>]
[<InlineData("""{ }""", """{"v":"x","w":[1] }""")>]
[<InlineData(""" {"model":"m"} """, """ {"v":"x","w":[1]} """)>]
[<InlineData("""{"model":"m","a":1}""", """{"v":"x","w":[1],"a":1}""")>]
let ``prepended members go right after the opening brace`` (body: string, expected: string) =
    let result, _ = edit body [ "model" ] [ "v", "\"x\""; "w", "[1]" ]
    Assert.Equal(expected, result)
    Assert.True(isValidJson result)

[<Fact>]
let ``a prepended name is JSON-escaped`` () =
    let result, _ = edit """{}""" [] [ "a\"b", "1" ]
    Assert.Equal("""{"a\"b":1}""", result)

[<Fact>]
let ``nothing to do gives the body back byte for byte`` () =
    let body = "{ \"a\" :\t1.50 , \"b\": \"\\u00e9\" }"
    Assert.Equal(body, fst (edit body [ "model" ] []))

[<Theory>]
[<InlineData("")>]
[<InlineData("[]")>]
[<InlineData("\"model\"")>]
[<InlineData("{\"a\":1")>]
[<InlineData("{\"a\":1,}")>]
[<InlineData("{\"a\":1} x")>]
[<InlineData("{\"a\":1}{}")>]
let ``anything but one JSON object is an error`` (body: string) =
    match JsonEdit.edit (ReadOnlySpan(bytes body)) [ "a" ] [] with
    | Error _ -> ()
    | Ok(result, _) -> failwith $"expected an error, got %s{Encoding.UTF8.GetString result}"

[<Fact>]
let ``invalid UTF-8 is an error`` () =
    let body = Array.concat [ bytes "{\"a\":\""; [| 0xFFuy |]; bytes "\"}" ]
    Assert.True(Result.isError (JsonEdit.edit (ReadOnlySpan body) [] []))

[<Theory>]
[<InlineData("""{"a":"x\\\"}{[","model":"m","b":[{"c":"]\\"},"{"],"n":-1.5e3,"stream":true}""")>]
[<InlineData(" \r\n{ \"stream\" :false, \"model\":\"m\" , \"t\":[[],{}] , \"u\":null}\n ")>]
[<InlineData("""{"mo\u0064el":"m","stream":true,"x":"\u00e9"}""")>]
[<InlineData("""{}""")>]
let ``editValid edits a valid body as edit does: quotes, brackets and escapes inside strings, whitespace, escaped names``
    (body: string)
    =
    let prepend = [ "anthropic_version", bytes "\"v\"" ]
    let remove = [ "model"; "stream" ]

    match
        JsonEdit.edit (ReadOnlySpan(bytes body)) remove prepend,
        JsonEdit.editValid (ReadOnlySpan(bytes body)) remove prepend
    with
    | Ok(expected, expectedRemoved), Ok(result, removed) ->
        Assert.Equal(Encoding.UTF8.GetString expected, Encoding.UTF8.GetString result)
        Assert.Equal<string list>(expectedRemoved, removed)
        Assert.True(isValidJson (Encoding.UTF8.GetString result))
    | other -> failwith $"expected two edits, got %A{other}"
