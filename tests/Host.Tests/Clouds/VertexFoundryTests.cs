using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Azure.Core;
using CcRelay.Core;
using CcRelay.Host.Credentials;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Clouds;

/// <summary>
/// The relay → a fake Vertex AI (with a fake Google OAuth token endpoint reached through a generated service-account
/// file: the relay's JWT assertion is verified with the account's public key) and → a fake Microsoft Foundry.
/// </summary>
public sealed class VertexFoundryTests : TwoUpstreamTests, IDisposable
{
    private readonly RSA _serviceAccountKey = RSA.Create(2048);
    private readonly string _credentialsFile = Path.Combine(Path.GetTempPath(), "cc-relay-vertex-sa-" + Guid.NewGuid().ToString("N") + ".json");
    private int _tokensIssued;

    public void Dispose()
    {
        _serviceAccountKey.Dispose();
        File.Delete(_credentialsFile);
    }

    /// <summary>B plays Google's token endpoint: a JWT-bearer grant signed by the service account, else 400.</summary>
    private void GoogleTokenEndpoint(int expiresIn)
    {
        File.WriteAllText(_credentialsFile, JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["type"] = "service_account",
            ["project_id"] = "proj",
            ["private_key_id"] = "key-1",
            ["private_key"] = _serviceAccountKey.ExportPkcs8PrivateKeyPem(),
            ["client_email"] = "relay@proj.iam.gserviceaccount.com",
            ["client_id"] = "1234567890",
            ["token_uri"] = new Uri(B.BaseUrl, "/token").ToString(),
        }));
        B.Handler = async context =>
        {
            // the fake recorded (and so consumed) the body: the form is read from the record
            var form = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(Encoding.UTF8.GetString(FakeUpstream.Current(context).Body));
            if (form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer" || !AssertionVerifies(form["assertion"].ToString()))
            {
                await Fake.WriteJsonAsync(context, 400, """{"error":"invalid_grant"}""");
                return;
            }

            var n = Interlocked.Increment(ref _tokensIssued);
            await Fake.WriteJsonAsync(context, 200, $$"""{"access_token":"ya29.token-{{n}}","expires_in":{{expiresIn}},"token_type":"Bearer"}""");
        };
    }

    private bool AssertionVerifies(string assertion)
    {
        var parts = assertion.Split('.');
        if (parts.Length != 3)
        {
            return false;
        }

        var signed = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
        var signature = Base64UrlDecode(parts[2]);
        var claims = JsonDocument.Parse(Base64UrlDecode(parts[1])).RootElement;
        return _serviceAccountKey.VerifyData(signed, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            && claims.GetProperty("iss").GetString() == "relay@proj.iam.gserviceaccount.com"
            && claims.GetProperty("scope").GetString() == "https://www.googleapis.com/auth/cloud-platform";
    }

    private static byte[] Base64UrlDecode(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(padded + new string('=', (4 - (padded.Length % 4)) % 4));
    }

    private ProviderConfig Vertex(string region = "us-east5") =>
        TestConfig.Provider(
            "vertex",
            new Uri(A.BaseUrl, "/v1"),
            ProviderType.Vertex,
            cloud: CloudSettings.NewVertex(new VertexSettings("proj", region, FSharpOption<string>.Some(_credentialsFile))));

    private static Task StreamAsync(HttpContext context, string text) =>
        Task.Run(async () =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, text) + Fake.MessageEnd());
        });

    [Fact]
    public async Task Vertex_StreamRawPredict_WithAGoogleToken_BodyInVertexShape_AnswerRelayedAsIs()
    {
        // Arrange
        GoogleTokenEndpoint(expiresIn: 3600);
        A.Handler = context => FakeUpstream.Current(context).Header("authorization") == "Bearer ya29.token-1"
            ? StreamAsync(context, "from vertex")
            : Fake.WriteJsonAsync(context, 401, """{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}""");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([Vertex()]));
        const string body = """{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""";
        using var request = Requests.Messages(body);
        request.Headers.TryAddWithoutValidation("anthropic-beta", "interleaved-thinking-2025-05-14");

        // Act
        using var response = await relay.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Fake.MessageStart() + Fake.TextBlock(0, "from vertex") + Fake.MessageEnd(), text);
        var sent = Assert.Single(A.Requests);
        Assert.Equal("/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict", sent.RawTarget);
        Assert.Equal("interleaved-thinking-2025-05-14", sent.Header("anthropic-beta"));
        Assert.Null(sent.Header("x-api-key"));
        var json = JsonDocument.Parse(sent.Body).RootElement;
        Assert.False(json.TryGetProperty("model", out _));
        Assert.True(json.GetProperty("stream").GetBoolean());
        Assert.Equal("vertex-2023-10-16", json.GetProperty("anthropic_version").GetString());
    }

    [Fact]
    public async Task GeminiOnVertex_StreamGenerateContent_WithAGoogleToken_TranslatedToAnthropicEvents()
    {
        // Arrange: a type gemini provider on Vertex AI; the fake checks the token and the publisher-model path
        GoogleTokenEndpoint(expiresIn: 3600);
        A.Handler = context => FakeUpstream.Current(context).Header("authorization") == "Bearer ya29.token-1"
            && FakeUpstream.Current(context).RawTarget == "/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
            ? Translation.FakeGemini.StreamAsync(context, Translation.FakeGemini.Chunk("""[{"text":"from gemini on vertex"}]""", "STOP", usage: true))
            : Fake.WriteJsonAsync(context, 401, """{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}""");
        var settings = new GeminiSettings(GeminiEndpoint.NewVertex(new VertexSettings("proj", "us-central1", FSharpOption<string>.Some(_credentialsFile))), GeminiThinking.Auto, DroppedPolicy.Report);
        var provider = TestConfig.Provider(
            "gemini-vertex",
            new Uri(A.BaseUrl, "/v1"),
            ProviderType.Gemini,
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gemini-2.5-pro" },
            cloud: CloudSettings.NewGemini(settings));
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([provider]));
        using var request = Requests.Messages("""{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        // Act
        using var response = await relay.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("event: message_start", text);
        Assert.Contains("from gemini on vertex", text);
        Assert.EndsWith("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", text);
        var sent = Assert.Single(A.Requests);
        Assert.Null(sent.Header("x-goog-api-key"));
        Assert.Equal("hi", JsonDocument.Parse(sent.Body).RootElement.GetProperty("contents")[0].GetProperty("parts")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Vertex_AnExpiringToken_IsRefreshedBeforeItsNextUse()
    {
        // Arrange: tokens that expire within Google's refresh margin are never used twice
        GoogleTokenEndpoint(expiresIn: 60);
        A.Handler = context => StreamAsync(context, "ok");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([Vertex()]));

        // Act
        for (var i = 0; i < 2; i++)
        {
            using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Assert
        Assert.Equal(["Bearer ya29.token-1", "Bearer ya29.token-2"], A.Requests.Select(r => r.Header("authorization")));
    }

    [Fact]
    public async Task Vertex_A401_RefreshesTheTokenOnce_AndRetries()
    {
        // Arrange: the first token is refused (revoked early); the second works
        GoogleTokenEndpoint(expiresIn: 3600);
        A.Handler = context => FakeUpstream.Current(context).Header("authorization") == "Bearer ya29.token-2"
            ? StreamAsync(context, "after refresh")
            : Fake.WriteJsonAsync(context, 401, """{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}""");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([Vertex()]));

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("after refresh", await response.Content.ReadAsStringAsync());
        Assert.Equal(2, A.Requests.Count);
    }

    [Fact]
    public async Task Vertex_GooglesQuotaError_BecomesAnAnthropicRateLimitError_WithGooglesMessage()
    {
        // Arrange
        GoogleTokenEndpoint(expiresIn: 3600);
        A.Handler = context => Fake.WriteJsonAsync(context, 429, """{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model","status":"RESOURCE_EXHAUSTED"}}""");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([Vertex()]));

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        // Assert
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        Assert.Equal("Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model", error.GetProperty("message").GetString());
    }

    private ProviderConfig Foundry(IEnumerable<string>? keys = null) =>
        TestConfig.Provider(
            "foundry",
            new Uri(A.BaseUrl, "/anthropic"),
            ProviderType.Foundry,
            keys: keys,
            cloud: CloudSettings.NewFoundry(new FoundrySettings(FSharpOption<string>.None, EntraCredential.Default, FSharpOption<string>.None)));

    [Fact]
    public async Task Foundry_WithAKey_IsTheAnthropicShapeAtTheResourceEndpoint()
    {
        // Arrange
        A.Handler = context => StreamAsync(context, "from foundry");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([Foundry(keys: ["foundry-key"])]));

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from foundry", await response.Content.ReadAsStringAsync());
        var sent = Assert.Single(A.Requests);
        Assert.Equal("/anthropic/v1/messages?beta=true", sent.RawTarget);
        Assert.Equal("foundry-key", sent.Header("x-api-key"));
        Assert.Equal(Requests.StreamingBody, Encoding.UTF8.GetString(sent.Body));
    }

    [Fact]
    public async Task Foundry_WithoutAKey_SendsAnEntraToken_CachedUntilItNearsExpiry()
    {
        // Arrange: the first token is about to expire (refreshed at once), the second lasts an hour
        A.Handler = context => StreamAsync(context, "entra ok");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([Foundry()]));
        var entra = new FakeEntra([TimeSpan.FromMinutes(2), TimeSpan.FromHours(1)]);
        relay.Services.GetRequiredService<CloudCredentials>().Entra.Factory = (_, _) => entra;

        // Act
        for (var i = 0; i < 3; i++)
        {
            using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Assert
        Assert.Equal(["Bearer entra-1", "Bearer entra-2", "Bearer entra-2"], A.Requests.Select(r => r.Header("authorization")));
        Assert.All(entra.Scopes, scope => Assert.Equal("https://ai.azure.com/.default", scope));
    }

    [Fact]
    public async Task Foundry_WithAServicePrincipal_GetsItsTokenFromTheEntraEndpoint_AndARefusedTokenIsReplaced()
    {
        // Arrange: a fake Entra ID token endpoint on https (a self-signed certificate the relay's credential
        // transport is told to trust), reached through azure_authority_host; Foundry refuses the first token once
        using var certificate = SelfSignedLoopbackCertificate();
        await using var entra = await FakeUpstream.StartAsync(certificate);
        var issued = 0;
        entra.Handler = async context =>
        {
            var form = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(Encoding.UTF8.GetString(FakeUpstream.Current(context).Body));
            if (context.Request.Path != "/tenant-1/oauth2/v2.0/token" || form["grant_type"] != "client_credentials"
                || form["client_id"] != "client-1" || form["client_secret"] != "s3cret-value")
            {
                await Fake.WriteJsonAsync(context, 400, """{"error":"invalid_client"}""");
                return;
            }

            var n = Interlocked.Increment(ref issued);
            await Fake.WriteJsonAsync(context, 200, $$"""{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"entra-token-{{n}}"}""");
        };
        var foundryCalls = 0;
        A.Handler = context => Interlocked.Increment(ref foundryCalls) == 1
            ? Fake.WriteJsonAsync(context, 401, """{"type":"error","error":{"type":"authentication_error","message":"token expired"}}""")
            : StreamAsync(context, "entra ok");
        var settings = new FoundrySettings(
            FSharpOption<string>.None,
            EntraCredential.NewClientSecret("tenant-1", "client-1", "s3cret-value"),
            FSharpOption<string>.Some(entra.BaseUrl.GetLeftPart(UriPartial.Authority)));
        var provider = TestConfig.Provider("foundry", new Uri(A.BaseUrl, "/anthropic"), ProviderType.Foundry, cloud: CloudSettings.NewFoundry(settings));
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([provider]));
        using var trusting = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, presented, _, _) => presented?.Thumbprint == certificate.Thumbprint,
        };
        relay.Services.GetRequiredService<CloudCredentials>().Entra.Transport = new Azure.Core.Pipeline.HttpClientTransport(trusting);

        // Act: the first request meets the refusal (a fresh token, one retry), the second reuses the fresh token
        using var first = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
        var firstBody = await first.Content.ReadAsStringAsync();
        using var second = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));

        // Assert
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Contains("entra ok", firstBody);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(["Bearer entra-token-1", "Bearer entra-token-2", "Bearer entra-token-2"], A.Requests.Select(r => r.Header("authorization")));
        Assert.All(entra.Requests, r => Assert.Equal("/tenant-1/oauth2/v2.0/token", r.PathAndQuery));
        Assert.Equal(2, entra.Requests.Count);
        var scope = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(Encoding.UTF8.GetString(entra.Requests[0].Body))["scope"];
        Assert.Equal("https://ai.azure.com/.default", scope.ToString());
    }

    private static X509Certificate2 SelfSignedLoopbackCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var created = request.CreateSelfSigned(TimeProvider.System.GetUtcNow().AddMinutes(-5), TimeProvider.System.GetUtcNow().AddHours(1));
        // exported and re-imported so that Kestrel on Linux gets a certificate with a usable private key
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), null);
    }

    /// <summary>An Entra ID credential that issues numbered tokens with the given lifetimes.</summary>
    private sealed class FakeEntra(TimeSpan[] lifetimes) : TokenCredential
    {
        private int _issued;

        public List<string> Scopes { get; } = [];

        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            GetTokenAsync(requestContext, cancellationToken).AsTask().GetAwaiter().GetResult();

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            Scopes.AddRange(requestContext.Scopes);
            var n = Interlocked.Increment(ref _issued);
            return ValueTask.FromResult(new AccessToken("entra-" + n, TimeProvider.System.GetUtcNow() + lifetimes[Math.Min(n, lifetimes.Length) - 1]));
        }
    }
}
