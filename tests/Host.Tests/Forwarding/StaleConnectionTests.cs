using System.Net;
using System.Text;
using CcRelay.Core;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Forwarding;

/// <summary>
/// A POST sent into a pooled keep-alive connection that the upstream is closing (its idle timeout ran out as the
/// request left): SocketsHttpHandler does not retry it (it had begun sending a body), so the relay resends it once on
/// a new connection (<see cref="StaleConnection.resend"/>, <see cref="ResendOnClosedConnection"/>), and neither the
/// provider nor its key is blamed. The strict raw upstream closes the connection at the chosen moment: after reading
/// the request, before a byte of its answer (what the client sees of that race).
/// </summary>
public sealed class StaleConnectionTests : TwoUpstreamTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"model":"claude-sonnet-4-5","max_tokens":1}""");

    private static string Answer(string text)
    {
        var json = Fake.MessageJson(text);
        return $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(json)}\r\n\r\n{json}";
    }

    /// <summary>
    /// Answers every request, except that the first connection's <paramref name="closeAt"/>-th request is read and the
    /// connection closed without a byte of answer (<paramref name="closed"/> then completes).
    /// </summary>
    private static RawUpstream ClosingAt(int closeAt, TaskCompletionSource closed, string text = "from-a") =>
        RawUpstream.Start(async connection =>
        {
            var served = 0;
            while (await connection.ReadRequestAsync() is not null)
            {
                if (connection.Index == 1 && ++served == closeAt)
                {
                    connection.Close();
                    closed.TrySetResult();
                    return;
                }

                await connection.SendAsync(Answer(text));
            }
        });

    private const string Message = """{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""";

    private static HttpRequestMessage Post(Uri baseUrl) =>
        new(HttpMethod.Post, new Uri(baseUrl, "/v1/messages")) { Content = new UpstreamBodyContent(Body) };

    [Fact]
    public async Task Client_ReusedConnectionClosedBeforeAnswering_IsResentOnceOnANewConnection()
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = ClosingAt(2, closed);
        using var invoker = UpstreamClient.Create();
        using (var first = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None))
        {
            Assert.Contains("from-a", await first.Content.ReadAsStringAsync());
        }

        using var request = Post(upstream.BaseUrl);
        using var second = await invoker.SendAsync(request, CancellationToken.None);

        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10)); // the fake sets it just after its close, which the client may see first
        Assert.Contains("from-a", await second.Content.ReadAsStringAsync());
        Assert.Equal(2, upstream.Connections);
        Assert.Equal(3, upstream.Requests.Count);
        Assert.All(upstream.Requests, r => Assert.Equal(Body, r.Body));
        Assert.True(request.Options.TryGetValue(ResendOnClosedConnection.Resent, out var resent) && resent);
    }

    [Fact]
    public async Task Client_ReusedConnectionClosedTwice_IsResentOnlyOnce()
    {
        // every connection after the first answers once, then closes the next request unanswered
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = RawUpstream.Start(async connection =>
        {
            if (connection.Index == 1 && await connection.ReadRequestAsync() is not null)
            {
                await connection.SendAsync(Answer("first"));
            }

            await connection.ReadRequestAsync();
            connection.Close();
            closed.TrySetResult();
        });
        using var invoker = UpstreamClient.Create();
        using (var first = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None))
        {
            Assert.Contains("first", await first.Content.ReadAsStringAsync());
        }

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None));

        Assert.Equal(HttpRequestError.ResponseEnded, error.HttpRequestError);
        Assert.Equal(2, upstream.Connections);
        Assert.Equal(3, upstream.Requests.Count);
    }

    [Fact]
    public async Task Relay_ReusedConnectionClosedBeforeAnswering_NoFailover_NoBreakerCount()
    {
        // Arrange: A closes its first connection on the second request; its breaker opens at the first failure. B must
        // never be needed.
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = ClosingAt(2, closed);
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("a", upstream.BaseUrl, keys: ["a-key"], priority: 2), TestConfig.Provider("b", B.BaseUrl, keys: ["b-key"], priority: 1)],
            routing: TestConfig.Routing(debug: true),
            health: TestConfig.Health(failureThreshold: 1)));
        using var timeout = new CancellationTokenSource(Bound);

        // Act
        var answers = new List<(HttpStatusCode Status, string Body, string Attempts, string Health)>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await relay.Client.SendAsync(Requests.Messages(Message), timeout.Token);
            answers.Add((response.StatusCode, await response.Content.ReadAsStringAsync(timeout.Token), response.Headers.GetValues("x-cc-relay-attempts").Single(), response.Headers.GetValues("x-cc-relay-health").Single()));
        }

        // Assert: every request answered by A at its first attempt, the resent one included; A's circuit stays closed
        await closed.Task.WaitAsync(timeout.Token); // the fake sets it just after its close, which the relay may see first
        Assert.All(answers, a =>
        {
            Assert.Equal(HttpStatusCode.OK, a.Status);
            Assert.Contains("from-a", a.Body);
            Assert.Equal("1", a.Attempts);
            Assert.DoesNotContain("a=open", a.Health);
        });
        Assert.Empty(B.Requests);
        // the first connection (closed), the resend's own (never pooled), the third request's
        Assert.Equal(4, upstream.Requests.Count);
        Assert.Equal(3, upstream.Connections);
    }

    [Fact]
    public async Task Relay_NewConnectionClosedBeforeAnswering_IsNotResent_AndFailsOver()
    {
        // the upstream may have taken a request it closes a new connection on: that one is not sent twice
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = ClosingAt(1, closed);
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("a", upstream.BaseUrl, keys: ["a-key"], priority: 2), TestConfig.Provider("b", B.BaseUrl, keys: ["b-key"], priority: 1)],
            routing: TestConfig.Routing(debug: true)));
        using var timeout = new CancellationTokenSource(Bound);

        using var response = await relay.Client.SendAsync(Requests.Messages(Message), timeout.Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", await response.Content.ReadAsStringAsync(timeout.Token));
        Assert.Equal("2", response.Headers.GetValues("x-cc-relay-attempts").Single());
        Assert.Single(upstream.Requests);
        Assert.Single(B.Requests);
    }
}
