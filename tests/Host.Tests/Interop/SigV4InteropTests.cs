using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Interop;

/// <summary>
/// CcRelay.Core's SigV4 signer agrees with an independent one: <c>@smithy/signature-v4</c> (the AWS SDK for
/// JavaScript v3 signer), run by node through <c>tests/Interop/sigv4.mjs</c>. The URLs are built by
/// <c>Bedrock.url</c>, exactly as the relay sends them. node and <c>npm ci</c> in tests/Interop are required
/// (<c>tests/run-all.sh</c> provides both): without them these tests fail rather than skip.
/// </summary>
public sealed class SigV4InteropTests
{
    private const string AccessKeyId = "AKIDEXAMPLE";
    private const string SecretAccessKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    private static readonly DateTimeOffset Now = new(2026, 3, 14, 15, 9, 26, TimeSpan.Zero);
    private static readonly byte[] Body = Encoding.UTF8.GetBytes(
        """{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}""");

    public static TheoryData<string, string, string?, string> Requests => new()
    {
        // base URL, path (already wire-encoded, with any query), session token, region
        { "https://bedrock-runtime.us-east-1.amazonaws.com", Bedrock.invokePath("anthropic.claude-sonnet-4-6", false), null, "us-east-1" },
        { "https://bedrock-runtime.us-west-2.amazonaws.com", Bedrock.invokePath("us.anthropic.claude-sonnet-4-5-20250929-v1:0", true), null, "us-west-2" },
        { "https://bedrock-runtime.us-east-1.amazonaws.com", Bedrock.invokePath("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123xyz", true), null, "us-east-1" },
        { "https://bedrock-runtime.eu-west-1.amazonaws.com", Bedrock.countTokensPath("anthropic.claude-haiku-4-5-20251001-v1:0") + "?b=2&a=x%20y&a=1&c=%2F~", null, "eu-west-1" },
        { "https://bedrock-runtime.ap-northeast-1.amazonaws.com", Bedrock.invokePath("apac.anthropic.claude-sonnet-4-5-20250929-v1:0", false), "IQoJb3JpZ2luX2VjEXAMPLE+/token==", "ap-northeast-1" },
        { "http://127.0.0.1:8443/prefix", Bedrock.invokePath("global.anthropic.claude-opus-4-6-v1", true), "session-token", "us-east-1" },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Sign_AgreesWithSmithy(string baseUrl, string path, string? sessionToken, string region)
    {
        // Arrange
        var url = Bedrock.url(new Uri(baseUrl), path);
        var headers = new[] { ("content-type", "application/json"), ("x-amz-meta-note", "  two   spaces ") };
        var credentials = new AwsCredentials(
            AccessKeyId,
            SecretAccessKey,
            sessionToken is null ? FSharpOption<string>.None : FSharpOption<string>.Some(sessionToken));

        // Act
        var ours = SigV4.sign(
            credentials,
            region,
            "bedrock",
            Now,
            "POST",
            url,
            ListModule.OfSeq(headers.Select(h => Tuple.Create(h.Item1, h.Item2))),
            SigV4.sha256Hex(Body))
            .ToDictionary(h => h.Item1, h => h.Item2);
        // the host's path: content-type apart, the body hashed by the signer (twice: the second from the caches)
        var first = SigV4.signRequest(credentials, region, "bedrock", Now, "POST", url, "application/json", [("x-amz-meta-note", "  two   spaces ")], Body);
        var hostPath = SigV4.signRequest(credentials, region, "bedrock", Now, "POST", url, "application/json", [("x-amz-meta-note", "  two   spaces ")], Body);
        var theirs = await SmithyAsync(url.OriginalString, headers, region, sessionToken);

        // Assert: the URL goes out as built, then the signature and every header smithy adds
        Assert.Equal(new Uri(baseUrl).AbsolutePath.TrimEnd('/') + path, url.PathAndQuery);
        Assert.Equal(theirs["authorization"], ours["authorization"]);
        Assert.Equal(theirs.Keys.Order(), ours.Keys.Order());
        Assert.All(theirs, header => Assert.Equal(header.Value, ours[header.Key]));
        foreach (var signed in new[] { first, hostPath })
        {
            Assert.Equal(theirs["authorization"], signed.Authorization);
            Assert.Equal(theirs["x-amz-date"], signed.AmzDate);
            Assert.Equal(theirs["x-amz-content-sha256"], signed.ContentSha256);
            Assert.Equal(theirs.GetValueOrDefault("x-amz-security-token"), signed.SecurityToken);
        }
    }

    [Fact]
    public async Task Smithy_DifferentSecret_GivesADifferentSignature()
    {
        // the harness itself must be able to disagree
        var url = Bedrock.url(new Uri("https://bedrock-runtime.us-east-1.amazonaws.com"), Bedrock.invokePath("anthropic.claude-sonnet-4-6", false));
        var credentials = new AwsCredentials(AccessKeyId, SecretAccessKey + "x", FSharpOption<string>.None);

        var ours = SigV4.sign(credentials, "us-east-1", "bedrock", Now, "POST", url, FSharpList<Tuple<string, string>>.Empty, SigV4.sha256Hex(Body))
            .ToDictionary(h => h.Item1, h => h.Item2);
        var theirs = await SmithyAsync(url.OriginalString, [], "us-east-1", null);

        Assert.NotEqual(theirs["authorization"], ours["authorization"]);
    }

    /// <summary>Finds tests/Interop by walking up from the test binaries to the repository root.</summary>
    private static string InteropDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Interop");
            if (File.Exists(Path.Combine(candidate, "sigv4.mjs")) && File.Exists(Path.Combine(dir.FullName, "CcRelay.sln")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Interop/sigv4.mjs not found above " + AppContext.BaseDirectory);
    }

    private static async Task<Dictionary<string, string>> SmithyAsync(
        string url, (string Name, string Value)[] headers, string region, string? sessionToken)
    {
        var directory = InteropDirectory();
        Assert.True(
            Directory.Exists(Path.Combine(directory, "node_modules", "@smithy", "signature-v4")),
            $"@smithy/signature-v4 is not installed: run `npm ci` in {directory} (tests/run-all.sh does)");

        var input = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["method"] = "POST",
            ["url"] = url,
            ["headers"] = headers.ToDictionary(h => h.Name, h => h.Value),
            ["body"] = Convert.ToBase64String(Body),
            ["region"] = region,
            ["service"] = "bedrock",
            ["accessKeyId"] = AccessKeyId,
            ["secretAccessKey"] = SecretAccessKey,
            ["sessionToken"] = sessionToken,
            ["date"] = Now.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
        });

        var (exitCode, output, error) = await ToolProcess.RunAsync("node", ["sigv4.mjs"], input, "the SigV4 interop tests need Node.js (tests/run-all.sh installs it)", directory);
        Assert.True(exitCode == 0, $"node sigv4.mjs exited {exitCode}: {error}");
        return JsonSerializer.Deserialize<Dictionary<string, string>>(output)
            ?? throw new InvalidOperationException("sigv4.mjs printed null");
    }
}
