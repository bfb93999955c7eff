module CcRelay.Core.Tests.ClaudeSettingsTests

open CcRelay.Core
open Xunit

let private url = "http://127.0.0.1:8787"

let private written (edit: SettingsEdit) : string * string list =
    match edit with
    | SettingsEdit.Write(text, changes) -> text, changes
    | other -> failwith $"expected Write, got %A{other}"

let private unchanged (edit: SettingsEdit) : string =
    match edit with
    | SettingsEdit.Unchanged reason -> reason
    | other -> failwith $"expected Unchanged, got %A{other}"

let private refused (edit: SettingsEdit) : string =
    match edit with
    | SettingsEdit.Refused reason -> reason
    | other -> failwith $"expected Refused, got %A{other}"

let private json (text: string) : string = text.ReplaceLineEndings "\n"

// ---------------------------
// setBaseUrl
// ---------------------------

[<Theory>]
[<InlineData("")>]
[<InlineData("  \n")>]
[<InlineData("{}")>]
[<InlineData("""{"env":null}""")>]
let ``setBaseUrl on an empty file creates env with only the base URL`` (settings: string) =
    let text, changes = ClaudeSettings.setBaseUrl settings url |> written

    Assert.Equal(
        json
            """{
  "env": {
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:8787"
  }
}
""",
        text
    )

    Assert.Equal<string list>([ $"set env.ANTHROPIC_BASE_URL to %s{url}" ], changes)

[<Fact>]
let ``setBaseUrl keeps every other key, value and order`` () =
    let settings =
        """{"model":"opus","env":{"FOO":"1","ANTHROPIC_BASE_URL":"https://gateway.example","BAR":2.50},"permissions":{"allow":["Bash(ls:*)"]},"note":"é <b>"}"""

    let text, changes = ClaudeSettings.setBaseUrl settings url |> written

    Assert.Equal(
        json
            """{
  "model": "opus",
  "env": {
    "FOO": "1",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:8787",
    "BAR": 2.50
  },
  "permissions": {
    "allow": [
      "Bash(ls:*)"
    ]
  },
  "note": "é <b>"
}
""",
        text
    )

    Assert.Equal<string list>([ $"changed env.ANTHROPIC_BASE_URL from https://gateway.example to %s{url}" ], changes)

[<Fact>]
let ``setBaseUrl is idempotent`` () =
    let once, _ = ClaudeSettings.setBaseUrl "{}" url |> written
    let reason = ClaudeSettings.setBaseUrl once url |> unchanged
    Assert.Equal($"env.ANTHROPIC_BASE_URL is already %s{url}", reason)

[<Fact>]
let ``setBaseUrl never writes a credential and removes the Go placeholder token, 16-3`` () =
    let settings =
        """{"env":{"ANTHROPIC_AUTH_TOKEN":"managed-by-cc-relay","ANTHROPIC_BASE_URL":"http://127.0.0.1:8787"}}"""

    let text, changes = ClaudeSettings.setBaseUrl settings url |> written

    Assert.DoesNotContain("ANTHROPIC_AUTH_TOKEN", text)
    Assert.DoesNotContain("ANTHROPIC_API_KEY", text)
    Assert.Contains("managed-by-cc-relay", Assert.Single changes)

[<Fact>]
let ``setBaseUrl keeps a real auth token`` () =
    let settings = """{"env":{"ANTHROPIC_AUTH_TOKEN":"sk-real"}}"""
    let text, _ = ClaudeSettings.setBaseUrl settings url |> written
    Assert.Contains("\"ANTHROPIC_AUTH_TOKEN\": \"sk-real\"", text)

[<Theory>]
[<InlineData("{bad", "not valid JSON (line 1, byte 2")>]
[<InlineData("{\"a\":1} x", "not valid JSON")>]
[<InlineData("// comment\n{}", "not valid JSON")>]
[<InlineData("[1,2]", "top level is not a JSON object")>]
[<InlineData("null", "top level is not a JSON object")>]
[<InlineData("{\"env\":[\"A=1\"]}", "\"env\" is not a JSON object")>]
[<InlineData("{\"env\":{\"A\":\"1\"},\"env\":{}}", "same key has already been added. Key: env")>]
let ``setBaseUrl refuses what it cannot edit safely`` (settings: string, reason: string) =
    Assert.Contains(reason, ClaudeSettings.setBaseUrl settings url |> refused)

// ---------------------------
// removeBaseUrl
// ---------------------------

[<Fact>]
let ``removeBaseUrl removes the relay's URL and an env it leaves empty`` () =
    let settings =
        """{"model":"opus","env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:8787/"},"z":1}"""

    let text, changes = ClaudeSettings.removeBaseUrl settings (Some url) |> written

    Assert.Equal(json "{\n  \"model\": \"opus\",\n  \"z\": 1\n}\n", text)

    Assert.Equal<string list>(
        [
            "removed env.ANTHROPIC_BASE_URL (it was http://127.0.0.1:8787/)"
            "removed \"env\", which became empty"
        ],
        changes
    )

[<Fact>]
let ``removeBaseUrl keeps env when other variables remain`` () =
    let settings =
        """{"env":{"FOO":"1","ANTHROPIC_BASE_URL":"http://127.0.0.1:8787"}}"""

    let text, _ = ClaudeSettings.removeBaseUrl settings (Some url) |> written
    Assert.Equal(json "{\n  \"env\": {\n    \"FOO\": \"1\"\n  }\n}\n", text)

[<Fact>]
let ``removeBaseUrl leaves a URL that points elsewhere`` () =
    let settings = """{"env":{"ANTHROPIC_BASE_URL":"https://gateway.example"}}"""

    let reason = ClaudeSettings.removeBaseUrl settings (Some url) |> unchanged

    Assert.Equal(
        "env.ANTHROPIC_BASE_URL is https://gateway.example, not this relay's URL http://127.0.0.1:8787; it was left as it is (--force removes it anyway)",
        reason
    )

[<Fact>]
let ``removeBaseUrl without an expected URL removes any value`` () =
    let settings = """{"env":{"ANTHROPIC_BASE_URL":"https://gateway.example"}}"""
    let text, _ = ClaudeSettings.removeBaseUrl settings None |> written
    Assert.Equal("{}\n", text)

[<Theory>]
[<InlineData("")>]
[<InlineData("{}")>]
[<InlineData("""{"env":{"FOO":"1"}}""")>]
let ``removeBaseUrl with nothing to remove changes nothing`` (settings: string) =
    Assert.Contains("is not set; nothing to remove", ClaudeSettings.removeBaseUrl settings (Some url) |> unchanged)

[<Fact>]
let ``removeBaseUrl also removes the Go placeholder token`` () =
    let settings =
        """{"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:8787","ANTHROPIC_AUTH_TOKEN":"managed-by-cc-relay"}}"""

    let text, changes = ClaudeSettings.removeBaseUrl settings (Some url) |> written
    Assert.Equal("{}\n", text)
    Assert.Equal(3, changes.Length)

[<Fact>]
let ``removeBaseUrl refuses invalid JSON`` () =
    Assert.Contains("not valid JSON", ClaudeSettings.removeBaseUrl "{" (Some url) |> refused)

// ---------------------------
// clientUrl
// ---------------------------

[<Theory>]
[<InlineData("127.0.0.1", 8787, "http://127.0.0.1:8787")>]
[<InlineData("0.0.0.0", 9000, "http://127.0.0.1:9000")>]
[<InlineData("::", 9000, "http://[::1]:9000")>]
[<InlineData("::1", 9000, "http://[::1]:9000")>]
[<InlineData("relay.internal", 80, "http://relay.internal:80")>]
let ``clientUrl reaches a wildcard listen address through loopback`` (host: string, port: int, expected: string) =
    Assert.Equal(Ok expected, ClaudeSettings.clientUrl { Host = host; Port = port })

[<Fact>]
let ``clientUrl has no answer for port 0`` () =
    match ClaudeSettings.clientUrl { Host = "127.0.0.1"; Port = 0 } with
    | Error message -> Assert.Contains("port 0", message)
    | Ok url -> failwith $"expected an error, got %s{url}"
