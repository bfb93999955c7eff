module CcRelay.Core.Tests.EdgeRulesTests

open System
open System.Text
open System.Text.Json
open CcRelay.Core
open Xunit

[<Theory>]
[<InlineData(".anthropic.com", "api.anthropic.com", true)>]
[<InlineData(".anthropic.com", "API.Anthropic.COM.", true)>]
[<InlineData(".anthropic.com", "anthropic.com", true)>]
[<InlineData(".anthropic.com", "evilanthropic.com", false)>]
[<InlineData(".anthropic.com", "anthropic.com.evil.net", false)>]
[<InlineData("api.anthropic.com", "api.anthropic.com", true)>]
[<InlineData("api.anthropic.com", "x.api.anthropic.com", false)>]
[<InlineData("127.0.0.1", "127.0.0.1", true)>]
[<InlineData("::1", "[::1]", true)>]
let ``Edge host pattern matches`` (pattern: string, host: string, expected: bool) =
    let parsed =
        match HostPattern.parse pattern with
        | Ok p -> p
        | Error e -> failwith e

    Assert.Equal(expected, HostPattern.matches host parsed)

[<Theory>]
[<InlineData("")>]
[<InlineData("*.anthropic.com")>]
[<InlineData("https://api.anthropic.com")>]
[<InlineData("api.anthropic.com:443")>]
[<InlineData(".")>]
let ``Edge host pattern refuses what is not a host or suffix`` (text: string) =
    Assert.True(Result.isError (HostPattern.parse text))

[<Fact>]
let ``Edge an empty allowlist admits every host`` () =
    Assert.True(HostPattern.allows [] "anything.example")

[<Fact>]
let ``Edge a redirect is refused, naming only the target's host`` () =
    let message = UpstreamRedirect.refusal 302 "https://other.example/steal?token=abc"

    Assert.Equal(
        Some "upstream answered 302 (a redirect to host other.example); the relay never follows redirects",
        message
    )

    Assert.Equal(None, UpstreamRedirect.refusal 200 null)
    Assert.Equal(None, UpstreamRedirect.refusal 404 "https://x")

[<Fact>]
let ``Edge the status token admits only its own bearer`` () =
    let policy = StatusToken.compile (Some "status-secret")
    Assert.True(StatusToken.isRequired policy)
    Assert.True(StatusToken.admits policy "Bearer status-secret")
    Assert.False(StatusToken.admits policy "Bearer status-secreT")
    Assert.False(StatusToken.admits policy "status-secret")
    Assert.False(StatusToken.admits policy null)
    Assert.True(StatusToken.admits (StatusToken.compile None) null)

[<Fact>]
let ``Edge admission: unlimited without max_concurrent, retry-after from the queue wait`` () =
    Assert.True((Admission.limits Config.defaults).Unlimited)

    let config = {
        Config.defaults with
            Server = {
                Config.defaults.Server with
                    MaxConcurrent = 4
            }
    }

    let limits = Admission.limits config
    Assert.Equal(4, limits.QueueSize)
    Assert.Equal(30, Admission.retryAfterSeconds limits)

    Assert.Equal(
        1,
        Admission.retryAfterSeconds {
            limits with
                QueueTimeout = TimeSpan.Zero
        }
    )

[<Fact>]
let ``Edge audit line is one JSON object with the secrets scrubbed`` () =
    let event = {
        At = DateTimeOffset(2026, 12, 7, 9, 0, 0, TimeSpan.Zero)
        Event = "auth.failed"
        Actor = "k-1234"
        Source = "10.0.0.1"
        Outcome = "denied"
        Details = [ "path", "/v1/messages"; "note", "carried sk-secret-1" ]
    }

    let line = Audit.toJsonLine [ "sk-secret-1" ] event
    Assert.Equal(byte '\n', line[line.Length - 1])
    let text = Encoding.UTF8.GetString line
    Assert.DoesNotContain("sk-secret-1", text)
    use json = JsonDocument.Parse(text)
    let root = json.RootElement
    Assert.Equal("2026-12-07T09:00:00.000Z", root.GetProperty("time").GetString())
    Assert.Equal("auth.failed", root.GetProperty("event").GetString())
    Assert.Equal("10.0.0.1", root.GetProperty("source").GetString())
    Assert.Equal("/v1/messages", root.GetProperty("path").GetString())

[<Fact>]
let ``Edge auth failures: N per minute per source, the rest counted into the next written one`` () =
    let minute = AuthFailureLimiter.window

    let step (limiter, verdicts) (at: TimeSpan, source: string) =
        let struct (verdict, next) = AuthFailureLimiter.admit at 2 source limiter
        next, verdicts @ [ verdict ]

    let _, verdicts =
        [
            TimeSpan.Zero, "a"
            TimeSpan.FromSeconds 1.0, "a"
            TimeSpan.FromSeconds 2.0, "a" // third in the minute: suppressed
            TimeSpan.FromSeconds 3.0, "b" // another source has its own minute
            TimeSpan.FromSeconds 4.0, "a"
            minute + TimeSpan.FromSeconds 1.0, "a" // a new minute: written, with the 2 left out
        ]
        |> List.fold step (AuthFailureLimiter.empty, [])

    Assert.Equal<AuditAdmit list>(
        [
            AuditAdmit.Write 0
            AuditAdmit.Write 0
            AuditAdmit.Suppress
            AuditAdmit.Write 0
            AuditAdmit.Suppress
            AuditAdmit.Write 2
        ],
        verdicts
    )
