module CcRelay.Core.Tests.ModelsTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private provider (name: string) (enabled: bool) (models: string list) : ProviderConfig = {
    Config.defaultProvider name ProviderType.AnthropicCompatible (Uri "https://example.test") with
        Enabled = enabled
        Models = models
}

let private config (providers: ProviderConfig list) : RelayConfig = {
    Config.defaults with
        Providers = providers
}

let private models (ids: string list) : ModelInfo list =
    ids
    |> List.map (fun id -> {
        Id = id
        DisplayName = id
        CreatedAt = Models.createdAt
        Provider = "p"
    })

let private ids (page: ModelPage) : string list = page.Data |> List.map _.Id

let private okPage (result: Result<ModelPage, string>) : ModelPage =
    match result with
    | Ok page -> page
    | Error e -> failwith e

let private abcde = models [ "a"; "b"; "c"; "d"; "e" ]

// ---------------------------
// catalogue
// ---------------------------

[<Fact>]
let ``the catalogue lists enabled providers' models in config order`` () =
    let catalogue =
        Models.catalogue (
            config [
                provider "one" true [ "m1"; "m2" ]
                provider "off" false [ "x" ]
                provider "two" true [ "m3" ]
            ]
        )

    Assert.Equal<string list>([ "m1"; "m2"; "m3" ], catalogue |> List.map _.Id)
    Assert.Equal<string list>([ "one"; "one"; "two" ], catalogue |> List.map _.Provider)

[<Fact>]
let ``a model listed twice keeps its first provider`` () =
    let catalogue =
        Models.catalogue (config [ provider "one" true [ "m"; "n" ]; provider "two" true [ "n"; "m"; "o" ] ])

    Assert.Equal<(string * string) list>(
        [ "m", "one"; "n", "one"; "o", "two" ],
        catalogue |> List.map (fun m -> m.Id, m.Provider)
    )

[<Fact>]
let ``catalogue entries carry the id as display name and the fixed creation date`` () =
    let entry =
        Models.catalogue (config [ provider "p" true [ "GLM-5" ] ]) |> List.exactlyOne

    Assert.Equal("GLM-5", entry.DisplayName)
    Assert.Equal(DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero), entry.CreatedAt)

[<Fact>]
let ``the embedded default config lists Anthropic's default models`` () =
    Assert.Equal<string list>(
        ProviderType.defaultModels ProviderType.Anthropic,
        Models.catalogue Config.defaults |> List.map _.Id
    )

[<Fact>]
let ``tryFind finds a model by exact id`` () =
    Assert.Equal(Some "c", Models.tryFind abcde "c" |> Option.map _.Id)
    Assert.Equal(None, Models.tryFind abcde "C")
    Assert.Equal(None, Models.tryFind [] "a")

// ---------------------------
// page
// ---------------------------

[<Fact>]
let ``without parameters the first 20 models are listed`` () =
    let many = models [ for i in 1..25 -> $"m%02d{i}" ]
    let page = Models.page many None None None |> okPage

    Assert.Equal(20, page.Data.Length)
    Assert.Equal("m01", page.Data.Head.Id)
    Assert.True(page.HasMore)

[<Fact>]
let ``a short catalogue fits on one page`` () =
    let page = Models.page abcde None None None |> okPage
    Assert.Equal<string list>([ "a"; "b"; "c"; "d"; "e" ], ids page)
    Assert.False(page.HasMore)

[<Fact>]
let ``an empty catalogue gives an empty last page`` () =
    let page = Models.page [] None None None |> okPage
    Assert.Empty(page.Data)
    Assert.False(page.HasMore)

[<Theory>]
[<InlineData("1", "a", false, "b")>]
[<InlineData("2", "a", false, "b,c")>]
[<InlineData("3", "b", false, "c,d,e")>]
[<InlineData("3", "a", false, "b,c,d")>]
[<InlineData("9", "c", false, "d,e")>]
[<InlineData("2", "e", false, "")>]
[<InlineData("2", "e", true, "c,d")>]
[<InlineData("2", "b", true, "a")>]
[<InlineData("1", "a", true, "")>]
[<InlineData("9", "d", true, "a,b,c")>]
let ``after_id and before_id page from the cursor`` (limit: string, cursor: string, before: bool, expected: string) =
    let page =
        if before then
            Models.page abcde (Some limit) None (Some cursor)
        else
            Models.page abcde (Some limit) (Some cursor) None
        |> okPage

    Assert.Equal(expected, String.Join(",", ids page))

[<Fact>]
let ``has_more tells whether more models lie in the paging direction`` () =
    Assert.True((Models.page abcde (Some "2") (Some "a") None |> okPage).HasMore)
    Assert.False((Models.page abcde (Some "3") (Some "b") None |> okPage).HasMore)
    Assert.True((Models.page abcde (Some "2") None (Some "e") |> okPage).HasMore)
    Assert.False((Models.page abcde (Some "2") None (Some "c") |> okPage).HasMore)
    Assert.True((Models.page abcde (Some "4") None None |> okPage).HasMore)
    Assert.False((Models.page abcde (Some "5") None None |> okPage).HasMore)

[<Theory>]
[<InlineData("1", 1)>]
[<InlineData("1000", 5)>]
[<InlineData("007", 5)>]
[<InlineData("3", 3)>]
let ``limit accepts integers from 1 to 1000`` (limit: string, expected: int) =
    Assert.Equal(expected, (Models.page abcde (Some limit) None None |> okPage).Data.Length)

[<Theory>]
[<InlineData("0")>]
[<InlineData("1001")>]
[<InlineData("-1")>]
[<InlineData("+5")>]
[<InlineData(" 5")>]
[<InlineData("5 ")>]
[<InlineData("1.5")>]
[<InlineData("abc")>]
[<InlineData("")>]
[<InlineData("99999999999")>]
let ``limit refuses anything else`` (limit: string) =
    match Models.page abcde (Some limit) None None with
    | Error message -> Assert.Equal($"limit: must be an integer from 1 to 1000 (got '%s{limit}')", message)
    | Ok page -> failwith $"accepted: %A{page}"

[<Fact>]
let ``an unknown cursor is an error naming the parameter`` () =
    Assert.Equal(Error "after_id: no model with id 'zz'", Models.page abcde None (Some "zz") None)
    Assert.Equal(Error "before_id: no model with id 'zz'", Models.page abcde None None (Some "zz"))

[<Fact>]
let ``after_id and before_id together are an error`` () =
    Assert.Equal(Error "after_id and before_id cannot be used together", Models.page abcde None (Some "a") (Some "c"))

[<Fact>]
let ``a bad limit is reported before a bad cursor`` () =
    match Models.page abcde (Some "0") (Some "zz") None with
    | Error message -> Assert.StartsWith("limit:", message)
    | Ok _ -> failwith "accepted"

// ---------------------------
// JSON
// ---------------------------

[<Fact>]
let ``pageJson writes Anthropic's list shape`` () =
    let json =
        Models.pageJson {
            Data = models [ "a"; "b" ]
            HasMore = true
        }
        |> Encoding.UTF8.GetString

    Assert.Equal(
        """{"data":[{"type":"model","id":"a","display_name":"a","created_at":"2025-01-01T00:00:00Z"},"""
        + """{"type":"model","id":"b","display_name":"b","created_at":"2025-01-01T00:00:00Z"}],"""
        + """"has_more":true,"first_id":"a","last_id":"b"}""",
        json
    )

[<Fact>]
let ``pageJson of an empty page has null cursors`` () =
    Assert.Equal(
        """{"data":[],"has_more":false,"first_id":null,"last_id":null}""",
        Models.pageJson { Data = []; HasMore = false } |> Encoding.UTF8.GetString
    )

[<Fact>]
let ``modelJson writes one model and never the provider`` () =
    let model = {
        Id = "claude-opus-4-6"
        DisplayName = "Claude Opus 4.6"
        CreatedAt = DateTimeOffset(2025, 5, 22, 13, 14, 15, TimeSpan.Zero)
        Provider = "secret-provider-name"
    }

    Assert.Equal(
        """{"type":"model","id":"claude-opus-4-6","display_name":"Claude Opus 4.6","created_at":"2025-05-22T13:14:15Z"}""",
        Models.modelJson model |> Encoding.UTF8.GetString
    )

// Regression: created_at printed the local wall-clock time followed by a literal Z.
[<Fact>]
let ``created_at is written in UTC whatever the offset`` () =
    let model = {
        Id = "m"
        DisplayName = "m"
        CreatedAt = DateTimeOffset(2025, 1, 1, 2, 0, 0, TimeSpan.FromHours 2.0)
        Provider = "p"
    }

    Assert.Contains("\"created_at\":\"2025-01-01T00:00:00Z\"", Models.modelJson model |> Encoding.UTF8.GetString)
