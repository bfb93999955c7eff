module CcRelay.Core.Tests.RedactTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private json (secrets: string list) (limit: int) (text: string) =
    Redact.json secrets limit (ReadOnlySpan(Encoding.UTF8.GetBytes text))

let private sse (secrets: string list) (limit: int) (text: string) =
    Redact.sse secrets limit (ReadOnlySpan(Encoding.UTF8.GetBytes text))

[<Theory>]
[<InlineData("x-api-key")>]
[<InlineData("Authorization")>]
[<InlineData("proxy-authorization")>]
[<InlineData("Cookie")>]
[<InlineData("set-cookie")>]
[<InlineData("x-goog-api-key")>]
[<InlineData("X-Refresh-Token")>]
[<InlineData("client_secret")>]
[<InlineData("PASSWORD")>]
[<InlineData("db_passwd")>]
[<InlineData("aws_credentials")>]
[<InlineData("apikey")>]
let ``credential-like names are sensitive`` (name: string) =
    Assert.True(Redact.isSensitive name, name)

[<Theory>]
[<InlineData("content-type")>]
[<InlineData("anthropic-version")>]
[<InlineData("x-request-id")>]
[<InlineData("model")>]
[<InlineData("messages")>]
[<InlineData("")>]
let ``ordinary names are not sensitive`` (name: string) =
    Assert.False(Redact.isSensitive name, name)

[<Fact>]
let ``headers show every value except credentials and known secrets`` () =
    let text =
        Redact.headers [ "sk-known-1" ] [
            "content-type", "application/json"
            "x-api-key", "sk-ant-api03-abc"
            "authorization", "Bearer tok"
            "cookie", "session=1"
            "x-custom", "prefix sk-known-1 suffix"
        ]

    Assert.Equal(
        "content-type: application/json; x-api-key: [REDACTED]; authorization: [REDACTED]; cookie: [REDACTED]; x-custom: prefix [REDACTED] suffix",
        text
    )

[<Fact>]
let ``query values of credential-like parameters are redacted, others kept`` () =
    Assert.Equal("?beta=true&api_key=[REDACTED]&x=1", Redact.query [] "?beta=true&api_key=s3cr3t&x=1")
    Assert.Equal("key=[REDACTED]", Redact.query [] "key=abc")
    Assert.Equal("?api%5Fkey=[REDACTED]", Redact.query [] "?api%5Fkey=abc")
    Assert.Equal("?q=[REDACTED]", Redact.query [ "known/secret" ] "?q=known%2Fsecret")
    Assert.Equal("", Redact.query [] "")

[<Fact>]
let ``urls lose user info and credential query values`` () =
    Assert.Equal(
        "https://api.example.com/v1/messages?beta=true&token=[REDACTED]",
        Redact.url [] (Uri "https://user:pw@api.example.com/v1/messages?beta=true&token=t0k")
    )

[<Fact>]
let ``json redacts credential-like fields at any depth and keeps the rest`` () =
    let body =
        """{"model":"m","max_tokens":64,"api_key":"sk-1","nested":{"Password":"p","list":[{"access_token":"t"}]},"secret":{"a":"b"},"messages":[{"role":"user","content":"hi"}]}"""

    Assert.Equal(
        """{"model":"m","max_tokens":64,"api_key":"[REDACTED]","nested":{"Password":"[REDACTED]","list":[{"access_token":"[REDACTED]"}]},"secret":"[REDACTED]","messages":[{"role":"user","content":"hi"}]}""",
        json [] 10_000 body
    )

[<Fact>]
let ``json scrubs known secrets from any string and reads escaped names`` () =
    let body = """{"content":"my key is sk-known-2, ok","api\u005fkey":"x"}"""
    Assert.Equal("""{"content":"my key is [REDACTED], ok","api_key":"[REDACTED]"}""", json [ "sk-known-2" ] 10_000 body)

[<Fact>]
let ``json is cut at the limit and says so`` () =
    let text = json [] 20 """{"model":"claude-sonnet-4-6","messages":[]}"""
    Assert.StartsWith("""{"model":"claude-son""", text)
    Assert.EndsWith("(cut; 43 bytes in all)", text)

[<Fact>]
let ``invalid json shows only what was read before the problem`` () =
    let text = json [] 1000 """{"model":"m","api_key": sk-raw-unquoted}"""
    Assert.DoesNotContain("sk-raw", text)
    Assert.StartsWith("""{"model":"m","api_key":""", text)
    Assert.Contains("cut;", text)

[<Fact>]
let ``not json at all shows nothing of it`` () =
    let text = json [] 1000 "password=hunter2"
    Assert.DoesNotContain("hunter2", text)

[<Fact>]
let ``sse keeps event lines, redacts data payloads and replaces comments`` () =
    let stream =
        "event: message_start\ndata: {\"type\":\"message_start\",\"token\":\"t1\"}\n\n: comment sk-x\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"

    Assert.Equal(
        "event: message_start\ndata: {\"type\":\"message_start\",\"token\":\"[REDACTED]\"}\n\n[REDACTED]\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n",
        sse [] 10_000 stream
    )

[<Fact>]
let ``sse cut inside an event shows no partial secret`` () =
    let text = sse [] 10_000 "event: x\ndata: {\"api_key\":\"sk-partial"
    Assert.DoesNotContain("sk-partial", text)
    Assert.Contains("cut;", text)

[<Fact>]
let ``config issues of credential keys hide quoted values; known secrets are scrubbed everywhere`` () =
    let sensitive =
        ConfigIssue.At("providers[0].keys[1].key", 3, 4, "got \"sk-value\" (from \"${X}\")")

    Assert.Equal(
        "providers[0].keys[1].key (line 3, column 4): got \"[REDACTED]\" (from \"[REDACTED]\")",
        Redact.issue [] sensitive
    )

    let other =
        ConfigIssue.At("server.timeout_ms", 5, 6, "expected an integer, got \"sk-known-3\"")

    Assert.Equal(
        "server.timeout_ms (line 5, column 6): expected an integer, got \"[REDACTED]\"",
        Redact.issue [ "sk-known-3" ] other
    )

    Assert.Equal("server.timeout_ms (line 5, column 6): expected an integer, got \"sk-known-3\"", Redact.issue [] other)

[<Fact>]
let ``a short secret is replaced only as a whole token, a long one everywhere`` () =
    // "20" (a test's key, an operator's short secret) must not eat the start of "200 ms"
    Assert.Equal("upstream timed out after 200 ms", Redact.scrub [ "20" ] "upstream timed out after 200 ms")
    Assert.Equal("key [REDACTED] refused; retry in 200 ms", Redact.scrub [ "20" ] "key 20 refused; retry in 200 ms")
    Assert.Equal("Bearer [REDACTED], x-api-key=[REDACTED]", Redact.scrub [ "k1" ] "Bearer k1, x-api-key=k1")
    Assert.Equal("mk1 k1x [REDACTED]", Redact.scrub [ "k1" ] "mk1 k1x k1")
    // a short secret spelled inside the marker leaves an earlier replacement whole
    Assert.Equal("got [REDACTED] and [REDACTED]", Redact.scrub [ "sk-long-secret"; "RED" ] "got sk-long-secret and RED")
    // an edge of the secret that is not a letter or digit needs no boundary on that side
    Assert.Equal("x[REDACTED]y", Redact.scrub [ "-k1-" ] "x-k1-y")
    // at the minimum length and above, every occurrence, inside a word too
    Assert.Equal(8, Redact.WholeTokenBelow)
    Assert.Equal("x[REDACTED]y [REDACTED]", Redact.scrub [ "sk-ant-1" ] "xsk-ant-1y sk-ant-1")
    Assert.Equal("x[REDACTED]0", Redact.scrub [ "12345678" ] "x123456780")
