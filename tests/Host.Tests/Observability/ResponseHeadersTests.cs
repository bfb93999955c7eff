using System.Globalization;
using System.Net;
using System.Text;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Observability;

/// <summary><c>x-cc-relay-request-id</c> and <c>x-cc-relay-overhead-ms</c> on every response, relayed or the relay's own.</summary>
public sealed class ResponseHeadersTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])], maxBodyBytes: 1024));
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static void AssertStamped(HttpResponseMessage response)
    {
        var id = response.Headers.GetValues("x-cc-relay-request-id").Single();
        Assert.Equal(response.Headers.GetValues("x-request-id").Single(), id);
        var overhead = double.Parse(response.Headers.GetValues("x-cc-relay-overhead-ms").Single(), CultureInfo.InvariantCulture);
        Assert.True(overhead >= 0, $"{response.RequestMessage?.RequestUri}: overhead {overhead}");
    }

    public static TheoryData<string, string, int> OwnAnswers => new()
    {
        { "GET", "/", 200 },
        { "HEAD", "/", 200 },
        { "GET", "/health", 200 },
        { "GET", "/v1/models", 200 },
        { "GET", "/v1/models/no-such-model", 404 },
        { "GET", "/metrics", 200 },
        { "GET", "/no/such/route", 404 },
        { "DELETE", "/v1/messages", 405 },
    };

    [Theory]
    [MemberData(nameof(OwnAnswers))]
    public async Task RelaysOwnAnswers_CarryTheHeaders(string method, string path, int status)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        using var response = await _relay.Client.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
        AssertStamped(response);
    }

    [Theory]
    [InlineData("""{"max_tokens":1}""", 400)]
    [InlineData(null, 413)]
    public async Task Rejections_CarryTheHeaders(string? body, int status)
    {
        using var response = await _relay.Client.SendAsync(Requests.Messages(body ?? new string('x', 2048)));

        Assert.Equal(status, (int)response.StatusCode);
        AssertStamped(response);
    }

    [Fact]
    public async Task RelayedAnswers_AndUpstreamErrors_CarryTheHeaders_WithTheClientsRequestId()
    {
        _upstream.Handler = context =>
        {
            // an upstream that sets the relay's headers itself (another relay) does not replace them
            context.Response.Headers["x-cc-relay-request-id"] = "upstream-id";
            context.Response.Headers["x-cc-relay-overhead-ms"] = "-5";
            return Fake.WriteJsonAsync(context, 500, """{"type":"error","error":{"type":"api_error","message":"x"}}""");
        };
        var request = Requests.Messages(Requests.PlainBody);
        request.Headers.TryAddWithoutValidation("x-request-id", "client-chosen-id");

        using var response = await _relay.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        AssertStamped(response);
        Assert.Equal("client-chosen-id", response.Headers.GetValues("x-cc-relay-request-id").Single());
    }

    [Fact]
    public async Task ConnectionFailure502_CarriesTheHeaders()
    {
        await using var dead = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("dead", new Uri("http://127.0.0.1:1"), keys: ["k"])]));

        using var response = await dead.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        AssertStamped(response);
    }

    [Fact]
    public async Task Stream_HeadersArriveBeforeTheFirstByte()
    {
        // the upstream sends its first event (routing classifies a stream by it before committing) and then
        // holds every other event until the client has the headers
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart());
            await context.Response.Body.FlushAsync();
            await go.Task.WaitAsync(Bound);
            await Fake.WriteAsync(context, Fake.TextBlock(0, "hi") + Fake.MessageEnd());
        };
        using var timeout = new CancellationTokenSource(Bound);

        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        AssertStamped(response);
        go.SetResult();
        var body = Encoding.UTF8.GetString(await response.Content.ReadAsByteArrayAsync(timeout.Token));

        Assert.Contains("event: message_stop", body, StringComparison.Ordinal);
    }
}
