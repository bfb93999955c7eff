module CcRelay.Core.Tests.HeadersTests

open Xunit
open CcRelay.Core

let private hopByHop = [
    "connection"
    "keep-alive"
    "proxy-authenticate"
    "proxy-authorization"
    "proxy-connection"
    "te"
    "trailer"
    "transfer-encoding"
    "upgrade"
    "alt-svc"
    "http2-settings"
    "upgrade-insecure-requests"
]

[<Fact>]
let ``every hop-by-hop header is recognised`` () =
    for name in hopByHop do
        Assert.True(Headers.isHopByHop name, name)

[<Theory>]
[<InlineData(":authority")>]
[<InlineData(":path")>]
[<InlineData(":method")>]
[<InlineData(":scheme")>]
[<InlineData(":status")>]
let ``pseudo-headers count as hop-by-hop and never travel`` (name: string) =
    Assert.True(Headers.isHopByHop name)
    Assert.False(Headers.forwardRequest name)
    Assert.False(Headers.forwardResponse false name)
    Assert.False(Headers.forwardResponse true name)

[<Theory>]
[<InlineData("content-type")>]
[<InlineData("anthropic-version")>]
[<InlineData("anthropic-beta")>]
[<InlineData("user-agent")>]
[<InlineData("x-request-id")>]
[<InlineData("x-claude-code-session-id")>]
[<InlineData("accept")>]
[<InlineData("connection-id")>]
[<InlineData("tex")>]
let ``end-to-end request headers are forwarded`` (name: string) =
    Assert.False(Headers.isHopByHop name)
    Assert.True(Headers.forwardRequest name)

[<Theory>]
[<InlineData("host")>]
[<InlineData("content-length")>]
[<InlineData("accept-encoding")>]
[<InlineData("expect")>]
[<InlineData("x-api-key")>]
[<InlineData("authorization")>]
[<InlineData("X-Api-Key")>]
[<InlineData("AUTHORIZATION")>]
[<InlineData("Proxy-Authorization")>]
[<InlineData("x-goog-api-key")>]
[<InlineData("X-Goog-Api-Key")>]
let ``headers the relay owns are not forwarded upstream`` (name: string) =
    Assert.False(Headers.forwardRequest name)

[<Fact>]
let ``hop-by-hop headers are not forwarded in either direction`` () =
    for name in hopByHop do
        Assert.False(Headers.forwardRequest name, name)
        Assert.False(Headers.forwardResponse false name, name)
        Assert.False(Headers.forwardResponse true name, name)

[<Fact>]
let ``content-length is dropped from streamed responses only`` () =
    Assert.True(Headers.forwardResponse false "content-length")
    Assert.False(Headers.forwardResponse true "content-length")
    Assert.False(Headers.forwardResponse true "Content-Length")

[<Theory>]
[<InlineData("content-type")>]
[<InlineData("request-id")>]
[<InlineData("anthropic-ratelimit-requests-remaining")>]
[<InlineData("retry-after")>]
[<InlineData("x-api-key")>]
let ``end-to-end response headers are forwarded, streamed or not`` (name: string) =
    Assert.True(Headers.forwardResponse false name)
    Assert.True(Headers.forwardResponse true name)

[<Fact>]
let ``the verdict ignores the case of the name`` () =
    Assert.True(Headers.isHopByHop "Transfer-Encoding")
    Assert.True(Headers.isHopByHop "KEEP-ALIVE")
    Assert.False(Headers.forwardRequest "Host")
    Assert.True(Headers.forwardRequest "Anthropic-Version")

// ---------------------------
// tryBearer
// ---------------------------

[<Theory>]
[<InlineData("Bearer abc", "abc")>]
[<InlineData("bearer abc", "abc")>]
[<InlineData("BEARER abc", "abc")>]
[<InlineData("  Bearer   abc  ", "abc")>]
[<InlineData("Bearer a b", "a b")>]
[<InlineData("Bearer sk-ant-oat01-xyz", "sk-ant-oat01-xyz")>]
let ``tryBearer reads the token of a bearer header`` (header: string, token: string) =
    Assert.Equal(Some token, Headers.tryBearer header)

[<Theory>]
[<InlineData("")>]
[<InlineData("Bearer")>]
[<InlineData("Bearer ")>]
[<InlineData("Bearer    ")>]
[<InlineData("Basic dXNlcjpwYXNz")>]
[<InlineData("Bearerabc")>]
[<InlineData("abc")>]
let ``tryBearer refuses other schemes and empty tokens`` (header: string) =
    Assert.Equal(None, Headers.tryBearer header)

[<Fact>]
let ``tryBearer of an absent header is None`` () =
    Assert.Equal(None, Headers.tryBearer null)

[<Theory>]
[<InlineData("Bearer sk-ant-123", true)>]
[<InlineData("", true)>]
[<InlineData("a, b;\tq=1", true)>]
[<InlineData("a\r\nx-api-key: stolen", false)>]
[<InlineData("a\nb", false)>]
[<InlineData("a\rb", false)>]
[<InlineData("a\000b", false)>]
let ``a header value is wire-safe unless it has a CR, LF or NUL`` (value: string, safe: bool) =
    Assert.Equal(safe, Headers.isWireSafe value)
