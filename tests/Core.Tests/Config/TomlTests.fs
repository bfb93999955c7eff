module CcRelay.Core.Tests.TomlTests

open System
open System.Text
open CcRelay.Core
open Xunit

// ---------------------------
// Helpers: trees without positions
// ---------------------------

let private nowhere: Position = { Line = 0; Column = 0 }

/// The tree with every position set to 0:0, for comparing shapes and values.
let rec private strip (node: ConfigNode) : ConfigNode =
    match node with
    | Scalar(value, _) -> Scalar(value, nowhere)
    | Sequence(items, _) -> Sequence(items |> List.map strip, nowhere)
    | Mapping(entries, _) ->
        Mapping(
            entries
            |> List.map (fun e -> {
                Key = e.Key
                KeyAt = nowhere
                Value = strip e.Value
            }),
            nowhere
        )

let private scalar (value: ScalarValue) : ConfigNode = Scalar(value, nowhere)
let private str (text: string) : ConfigNode = scalar (ScalarValue.String text)
let private int (value: int64) : ConfigNode = scalar (ScalarValue.Integer value)
let private list (items: ConfigNode list) : ConfigNode = Sequence(items, nowhere)

let private map (entries: (string * ConfigNode) list) : ConfigNode =
    Mapping(
        entries
        |> List.map (fun (key, value) -> {
            Key = key
            KeyAt = nowhere
            Value = value
        }),
        nowhere
    )

let private parse (text: string) : ConfigNode =
    match Toml.parse text with
    | Ok document -> document
    | Error e -> failwith $"rejected at %d{e.Position.Line}:%d{e.Position.Column}: %s{e.Message}"

let private error (text: string) : TomlError =
    match Toml.parse text with
    | Ok document -> failwith $"accepted: %A{document}"
    | Error e -> e

/// The value of `key` in a one-key document.
let private only (text: string) : ConfigNode =
    match parse text with
    | Mapping([ entry ], _) -> strip entry.Value
    | other -> failwith $"expected one key, got %A{other}"

let private at (line: int) (column: int) : Position = { Line = line; Column = column }

// ---------------------------
// Documents and positions
// ---------------------------

[<Fact>]
let ``an empty document is an empty mapping at 1:1`` () =
    Assert.Equal(ConfigNode.empty, parse "")
    Assert.Equal(ConfigNode.empty, parse "  # only a comment\n\n")

[<Fact>]
let ``keys, dotted keys and headers build nested mappings in file order`` () =
    let document =
        parse
            """
title = "relay"
server.listen = "127.0.0.1:8787"
server.auth.allow_bearer = true

[logging]
level = "info"

[providers.zai]
base_url = 'https://api.z.ai'
"""

    Assert.Equal(
        map [
            "title", str "relay"
            "server",
            map [
                "listen", str "127.0.0.1:8787"
                "auth", map [ "allow_bearer", scalar (ScalarValue.Boolean true) ]
            ]
            "logging", map [ "level", str "info" ]
            "providers", map [ "zai", map [ "base_url", str "https://api.z.ai" ] ]
        ],
        strip document
    )

[<Fact>]
let ``positions point at keys, values and headers`` () =
    match parse "a = 1\n\n[t]\n  b = \"x\"\n" with
    | Mapping([ a; t ], root) ->
        Assert.Equal(at 1 1, root)
        Assert.Equal(at 1 1, a.KeyAt)
        Assert.Equal(at 1 5, ConfigNode.position a.Value)
        Assert.Equal(at 3 2, t.KeyAt)
        Assert.Equal(at 3 1, ConfigNode.position t.Value)

        match t.Value with
        | Mapping([ b ], _) ->
            Assert.Equal(at 4 3, b.KeyAt)
            Assert.Equal(at 4 7, ConfigNode.position b.Value)
        | other -> failwith $"%A{other}"
    | other -> failwith $"%A{other}"

[<Fact>]
let ``arrays of tables collect one mapping per header, and sub-tables go to the last one`` () =
    let document =
        parse
            """
[[providers]]
name = "a"
[providers.pooling]
enabled = true

[[providers]]
name = "b"
"""

    Assert.Equal(
        map [
            "providers",
            list [
                map [
                    "name", str "a"
                    "pooling", map [ "enabled", scalar (ScalarValue.Boolean true) ]
                ]
                map [ "name", str "b" ]
            ]
        ],
        strip document
    )

[<Fact>]
let ``arrays may mix types, span lines and end with a comma`` () =
    Assert.Equal(
        list [ int 1L; str "two"; list [ int 3L ]; map [ "x", int 4L ] ],
        only "a = [\n  1, # one\n  \"two\",\n  [3], { x = 4 },\n]"
    )

// ---------------------------
// Strings
// ---------------------------

[<Fact>]
let ``basic strings decode every escape`` () =
    Assert.Equal(
        str "tab\there \"q\" back\\slash \u00e9 \U0001F600 \b\f\r\n",
        only "s = \"tab\\there \\\"q\\\" back\\\\slash \\u00e9 \\U0001F600 \\b\\f\\r\\n\""
    )

[<Theory>]
[<InlineData("s = \"\\x41\"")>]
[<InlineData("s = \"\\e\"")>]
[<InlineData("s = \"\\uD800\"")>]
[<InlineData("s = \"\\U00110000\"")>]
[<InlineData("s = \"\\u12\"")>]
let ``invalid escapes are errors`` (text: string) =
    Assert.Equal(at 1 6, (error text).Position)

[<Fact>]
let ``U+FFFD is an ordinary character`` () =
    Assert.Equal(str "\uFFFD", only "s = \"\uFFFD\"")
    Assert.Equal(str "\uFFFD", only "s = '\uFFFD'")

[<Fact>]
let ``literal strings keep backslashes`` () =
    Assert.Equal(str @"C:\Users\relay", only @"s = 'C:\Users\relay'")

[<Fact>]
let ``multi-line strings drop the first newline and a line-ending backslash trims what follows`` () =
    Assert.Equal(str "one\ntwo three", only "s = \"\"\"\none\ntwo \\\n    \n   three\"\"\"")
    Assert.Equal(str "a \\\n b", only "s = '''a \\\n b'''")

[<Fact>]
let ``up to two quotes may come right before the closing quotes`` () =
    Assert.Equal(str "say \"hi\"\"", only "s = \"\"\"say \"hi\"\"\"\"\"")
    Assert.Equal(str "it''", only "s = '''it'''''")
    Assert.Contains("too many", (error "s = '''it''''''").Message)

// ---------------------------
// Numbers, booleans, date-times
// ---------------------------

[<Theory>]
[<InlineData("0", 0L)>]
[<InlineData("+99", 99L)>]
[<InlineData("-17", -17L)>]
[<InlineData("1_000_000", 1000000L)>]
[<InlineData("0xDEAD_beef", 3735928559L)>]
[<InlineData("0o755", 493L)>]
[<InlineData("0b1101", 13L)>]
[<InlineData("9223372036854775807", 9223372036854775807L)>]
[<InlineData("-9223372036854775808", -9223372036854775808L)>]
[<InlineData("0x7fffffffffffffff", 9223372036854775807L)>]
let ``integers in every base and at the 64-bit limits`` (written: string, expected: int64) =
    Assert.Equal(int expected, only $"n = %s{written}")

[<Theory>]
[<InlineData("9223372036854775808")>]
[<InlineData("0x8000000000000000")>]
[<InlineData("012")>]
[<InlineData("1__0")>]
[<InlineData("_1")>]
[<InlineData("-0x1")>]
[<InlineData("0X1")>]
let ``malformed or out-of-range integers are errors`` (written: string) =
    Assert.Equal(1, (error $"n = %s{written}").Position.Line)

[<Theory>]
[<InlineData("3.14", "3.14")>]
[<InlineData("-0.5e-3", "-0.0005")>]
[<InlineData("1E6", "1000000")>]
[<InlineData("6_626e-3_4", "6.626e-31")>]
[<InlineData("inf", "Infinity")>]
[<InlineData("+inf", "Infinity")>]
[<InlineData("-inf", "-Infinity")>]
let ``floats with exponents, underscores and infinities`` (written: string, expected: string) =
    let expected = Double.Parse(expected, Globalization.CultureInfo.InvariantCulture)
    Assert.Equal(scalar (ScalarValue.Float expected), only $"f = %s{written}")

[<Fact>]
let ``nan is a float`` () =
    match only "f = -nan" with
    | Scalar(ScalarValue.Float f, _) -> Assert.True(Double.IsNaN f)
    | other -> failwith $"%A{other}"

[<Theory>]
[<InlineData("1.")>]
[<InlineData(".5")>]
[<InlineData("1.e2")>]
[<InlineData("Inf")>]
[<InlineData("True")>]
let ``malformed floats and booleans are errors`` (written: string) =
    Assert.Equal(1, (error $"v = %s{written}").Position.Line)

[<Fact>]
let ``date-times keep their text with T and upper-case Z`` () =
    Assert.Equal(scalar (ScalarValue.OffsetDateTime "1979-05-27T07:32:00.999Z"), only "d = 1979-05-27 07:32:00.999z")

    Assert.Equal(scalar (ScalarValue.OffsetDateTime "1979-05-27T00:32:00-07:00"), only "d = 1979-05-27t00:32:00-07:00")

    Assert.Equal(scalar (ScalarValue.LocalDateTime "1979-05-27T07:32:00"), only "d = 1979-05-27T07:32:00")
    Assert.Equal(scalar (ScalarValue.LocalDate "1979-05-27"), only "d = 1979-05-27 # a date")
    Assert.Equal(scalar (ScalarValue.LocalTime "00:32:00.5"), only "d = 00:32:00.5")

[<Theory>]
[<InlineData("2024-02-29", true)>]
[<InlineData("2000-02-29", true)>]
[<InlineData("2023-02-29", false)>]
[<InlineData("2100-02-29", false)>]
[<InlineData("2024-04-31", false)>]
[<InlineData("2024-13-01", false)>]
let ``February 29 only in leap years, and days within their month`` (date: string, valid: bool) =
    Assert.Equal(valid, Result.isOk (Toml.parse $"d = %s{date}"))

[<Theory>]
[<InlineData("d = 24:00:00")>]
[<InlineData("d = 12:60:00")>]
[<InlineData("d = 12:00:61")>]
[<InlineData("d = 12:00")>]
[<InlineData("d = 2024-01-01T12:00:00+24:00")>]
[<InlineData("d = 2024-01-01T12:00:00.")>]
let ``times out of range or incomplete are errors`` (text: string) =
    Assert.Equal(1, (error text).Position.Line)

// ---------------------------
// Defining tables and keys
// ---------------------------

[<Fact>]
let ``a table defined twice is an error at the second header`` () =
    let e = error "[server]\nlisten = \":1\"\n\n[server]\n"
    Assert.Equal(at 4 2, e.Position)
    Assert.Contains("line 1", e.Message)

[<Fact>]
let ``a key defined twice is an error, however it is quoted`` () =
    let e = error "name = 1\n\"name\" = 2"
    Assert.Equal(at 2 1, e.Position)
    Assert.Contains("already defined", e.Message)

[<Fact>]
let ``a super-table may be defined after its sub-table, once`` () =
    Assert.Equal(map [ "a", map [ "b", map [ "x", int 1L ]; "y", int 2L ] ], strip (parse "[a.b]\nx = 1\n[a]\ny = 2"))
    Assert.Equal(at 5 2, (error "[a.b]\nx = 1\n[a]\ny = 2\n[a]").Position)

[<Theory>]
[<InlineData("a = { b = 1 }\na.c = 2", 2)>]
[<InlineData("a = { b = 1 }\n[a.c]", 2)>]
[<InlineData("a = [{ b = 1 }]\n[[a]]", 2)>]
[<InlineData("[a.b]\n[a]\nb.c = 1", 3)>]
[<InlineData("a.b = 1\n[a]", 2)>]
[<InlineData("[[a]]\n[a]", 2)>]
let ``inline tables, arrays by value and header tables are closed to other forms`` (text: string, line: int) =
    Assert.Equal(line, (error text).Position.Line)

// Tomlyn 2.11.1 accepts these four and keeps only the later definition (docs/configuration.md, "Why our own parser").
[<Theory>]
[<InlineData("[[providers]]\nkeys = [{ key = \"k1\" }]\n[[providers.keys]]\nkey = \"k2\"", 3)>]
[<InlineData("[[providers]]\nkeys = { key = \"k1\" }\n[[providers.keys]]\nkey = \"k2\"", 3)>]
[<InlineData("[[providers]]\npooling = 1\n[providers.pooling]", 3)>]
[<InlineData("[[providers]]\npooling.enabled = true\n[providers.pooling]", 3)>]
let ``inside an array of tables, a key's value is closed to headers too`` (text: string, line: int) =
    let e = error text
    Assert.Equal(line, e.Position.Line)
    Assert.Contains("again", e.Message)

[<Fact>]
let ``a header may define sub-tables of a table made by dotted keys`` () =
    Assert.Equal(map [ "a", map [ "b", int 1L; "c", map [ "d", int 2L ] ] ], strip (parse "a.b = 1\n[a.c]\nd = 2"))

[<Fact>]
let ``inline tables stay on one line and take no trailing comma`` () =
    Assert.Equal(map [ "x", int 1L; "y", map [ "z", int 2L ] ], only "t = { x = 1, y.z = 2 }")
    Assert.Contains("one line", (error "t = { x = 1,\n y = 2 }").Message)
    Assert.Contains("trailing comma", (error "t = { x = 1, }").Message)

// ---------------------------
// Text: encodings, newlines, control characters
// ---------------------------

[<Fact>]
let ``a byte-order mark is skipped and does not count as a column`` () =
    match parse "\uFEFFa = 1" with
    | Mapping([ a ], _) -> Assert.Equal(at 1 1, a.KeyAt)
    | other -> failwith $"%A{other}"

    Assert.Equal(at 1 5, (error "\uFEFFa = \uFEFF1").Position)

[<Fact>]
let ``CRLF ends lines, a lone CR is an error`` () =
    Assert.Equal(map [ "a", int 1L; "b", int 2L ], strip (parse "a = 1\r\nb = 2\r\n"))
    Assert.Equal(at 1 6, (error "a = 1\rb = 2").Position)

[<Theory>]
[<InlineData("# bell \u0007\n")>]
[<InlineData("s = \"\u0000\"")>]
[<InlineData("s = 'del \u007F'")>]
[<InlineData("s = \"a\nb\"")>]
let ``control characters are rejected in comments and strings`` (text: string) =
    Assert.Equal(1, (error text).Position.Line)

[<Fact>]
let ``invalid UTF-8 is reported at its line and column`` () =
    let bytes =
        Array.concat [
            Encoding.UTF8.GetBytes "a = 1\nb = \"\u00e9"
            [| 0xFFuy |]
            Encoding.UTF8.GetBytes "\"\n"
        ]

    match Toml.parseUtf8 bytes with
    | Error e ->
        Assert.Equal(at 2 7, e.Position)
        Assert.Contains("UTF-8", e.Message)
    | Ok document -> failwith $"accepted: %A{document}"

[<Fact>]
let ``deep nesting is an error, not a stack overflow`` () =
    Assert.Contains("nest", (error ("a = " + String('[', 100_000))).Message)

    let inlineTables =
        String.replicate 10_000 "{ k1.k2 = " + "1" + String.replicate 10_000 " }"

    Assert.Contains("nest", (error ("a = " + inlineTables)).Message)
    Assert.Contains("parts", (error (String.replicate 1_000 "k." + "k = 1")).Message)
