using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>
/// What the fake checks of a cloud request before it answers: a Bedrock request's SigV4 signature (recomputed here
/// from the AWS specification, independently of the relay's signer, with the static test secret), a Vertex request's
/// bearer token, and both bodies' shape. A request that fails is answered the way the cloud would (403
/// InvalidSignatureException, 401 UNAUTHENTICATED) and counted; the counts are printed on exit.
/// </summary>
internal sealed class CloudChecks(string awsKeyId, string awsSecret, string vertexToken)
{
    private long _sigV4Ok;
    private long _sigV4Failed;
    private long _bearerOk;
    private long _bearerFailed;
    private long _shapeFailed;
    private int _reported;

    public string Summary =>
        $"CHECKS sigv4_ok={Interlocked.Read(ref _sigV4Ok)} sigv4_failed={Interlocked.Read(ref _sigV4Failed)} " +
        $"vertex_bearer_ok={Interlocked.Read(ref _bearerOk)} vertex_bearer_failed={Interlocked.Read(ref _bearerFailed)} " +
        $"body_shape_failed={Interlocked.Read(ref _shapeFailed)}";

    /// <summary>Null when the Bedrock request is signed right and shaped right, else why not (the first failure is logged).</summary>
    public string? Bedrock(string method, string target, string head, ReadOnlySpan<byte> body)
    {
        var why = VerifySigV4(method, target, Headers(head), body);
        if (why is null)
        {
            Interlocked.Increment(ref _sigV4Ok);
        }
        else
        {
            Interlocked.Increment(ref _sigV4Failed);
            Report("SigV4", why, head);
            return why;
        }

        // InvokeModel: anthropic_version first, no model, no stream
        if (!body.StartsWith("{\"anthropic_version\":\"bedrock-2023-05-31\""u8) || HasTopLevel(body, "\"model\""u8) || HasTopLevel(body, "\"stream\""u8))
        {
            Interlocked.Increment(ref _shapeFailed);
            Report("Bedrock body", "not {\"anthropic_version\":\"bedrock-2023-05-31\",…} without model/stream", Encoding.UTF8.GetString(body[..Math.Min(200, body.Length)]));
        }

        return null;
    }

    /// <summary>Null when the Vertex request carries the expected bearer token, else why not.</summary>
    public string? Vertex(string head, ReadOnlySpan<byte> body)
    {
        var auth = Headers(head).Where(h => h.Name == "authorization").Select(h => h.Value).FirstOrDefault();
        if (auth != "Bearer " + vertexToken)
        {
            Interlocked.Increment(ref _bearerFailed);
            Report("Vertex bearer", $"authorization is '{auth}'", head);
            return "bad bearer token";
        }

        Interlocked.Increment(ref _bearerOk);
        if (!body.StartsWith("{\"anthropic_version\":\"vertex-2023-10-16\""u8) || HasTopLevel(body, "\"model\""u8))
        {
            Interlocked.Increment(ref _shapeFailed);
            Report("Vertex body", "not {\"anthropic_version\":\"vertex-2023-10-16\",…} without model", Encoding.UTF8.GetString(body[..Math.Min(200, body.Length)]));
        }

        return null;
    }

    // good enough for the benchmark body: the member names the relay removes only occur at the top level there
    private static bool HasTopLevel(ReadOnlySpan<byte> body, ReadOnlySpan<byte> quotedName) => body.IndexOf(quotedName) >= 0;

    private void Report(string what, string why, string detail)
    {
        if (Interlocked.Increment(ref _reported) <= 3)
        {
            Console.Error.WriteLine($"CHECK FAILED {what}: {why}\n{detail}\n");
        }
    }

    private static List<(string Name, string Value)> Headers(string head)
    {
        var list = new List<(string, string)>();
        foreach (var line in head.Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                list.Add((line[..colon].Trim().ToLowerInvariant(), line[(colon + 1)..].Trim()));
            }
        }

        return list;
    }

    /// <summary>
    /// AWS SigV4, header form, non-S3 service (docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html):
    /// canonical request = method, canonical URI (the wire path URI-encoded once more, '/' kept), canonical query,
    /// the signed headers (lower-case name, trimmed value with inner whitespace runs collapsed, repeats joined with
    /// ','), the signed header list, hex SHA-256 of the body; string to sign = algorithm, x-amz-date, scope, hex
    /// SHA-256 of the canonical request; key = HMAC chain of "AWS4"+secret over date, region, service, "aws4_request".
    /// </summary>
    private string? VerifySigV4(string method, string target, List<(string Name, string Value)> headers, ReadOnlySpan<byte> body)
    {
        string? Get(string name)
        {
            var values = headers.Where(h => h.Name == name).Select(h => Collapse(h.Value)).ToArray();
            return values.Length == 0 ? null : string.Join(',', values);
        }

        var auth = Get("authorization");
        const string Algorithm = "AWS4-HMAC-SHA256";
        if (auth is null || !auth.StartsWith(Algorithm + " ", StringComparison.Ordinal))
        {
            return $"no {Algorithm} authorization header";
        }

        var parts = auth[(Algorithm.Length + 1)..].Split(',', StringSplitOptions.TrimEntries)
            .Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        if (!parts.TryGetValue("Credential", out var credential) || !parts.TryGetValue("SignedHeaders", out var signedHeaders)
            || !parts.TryGetValue("Signature", out var signature))
        {
            return "authorization lacks Credential, SignedHeaders or Signature";
        }

        var scope = credential.Split('/');
        if (scope.Length != 5 || scope[0] != awsKeyId || scope[4] != "aws4_request" || scope[3] != "bedrock")
        {
            return $"credential scope '{credential}' is not {awsKeyId}/<date>/<region>/bedrock/aws4_request";
        }

        var amzDate = Get("x-amz-date");
        if (amzDate is null || !DateTime.TryParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var signedAt))
        {
            return "no valid x-amz-date";
        }

        if (Math.Abs((DateTime.UtcNow - signedAt).TotalMinutes) > 5 || amzDate[..8] != scope[1])
        {
            return $"x-amz-date {amzDate} is more than 5 min off or not the scope's date {scope[1]}";
        }

        var names = signedHeaders.Split(';');
        if (!names.Contains("host") || !names.Contains("x-amz-date") || names.Order(StringComparer.Ordinal).SequenceEqual(names) is false)
        {
            return $"SignedHeaders '{signedHeaders}' must be sorted and include host and x-amz-date";
        }

        var payloadHash = Convert.ToHexStringLower(SHA256.HashData(body));
        var claimed = Get("x-amz-content-sha256");
        if (claimed is not null && claimed != payloadHash)
        {
            return $"x-amz-content-sha256 {claimed} is not the body's {payloadHash}";
        }

        var q = target.IndexOf('?', StringComparison.Ordinal);
        var path = q < 0 ? target : target[..q];
        var query = q < 0 ? "" : target[(q + 1)..];
        var canonical = new StringBuilder();
        canonical.Append(method).Append('\n').Append(UriEncode(path, keepSlash: true)).Append('\n');
        canonical.Append(string.Join('&', query.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .Select(p => (N: UriEncode(Uri.UnescapeDataString(p[0]), false), V: UriEncode(Uri.UnescapeDataString(p.Length > 1 ? p[1] : ""), false)))
            .OrderBy(p => p.N, StringComparer.Ordinal).ThenBy(p => p.V, StringComparer.Ordinal)
            .Select(p => p.N + "=" + p.V))).Append('\n');
        foreach (var name in names)
        {
            var value = Get(name);
            if (value is null)
            {
                return $"signed header '{name}' is not in the request";
            }

            canonical.Append(name).Append(':').Append(value).Append('\n');
        }

        canonical.Append('\n').Append(signedHeaders).Append('\n').Append(payloadHash);
        var canonicalRequest = canonical.ToString();
        var stringToSign = $"{Algorithm}\n{amzDate}\n{scope[1]}/{scope[2]}/{scope[3]}/aws4_request\n" +
            Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)));
        var key = Encoding.UTF8.GetBytes("AWS4" + awsSecret);
        foreach (var part in new[] { scope[1], scope[2], scope[3], "aws4_request" })
        {
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(part));
        }

        var expected = Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));
        return expected == signature ? null : $"signature {signature} is not {expected}; canonical request:\n{canonicalRequest}";
    }

    private static string Collapse(string value) => string.Join(' ', value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries));

    private static string UriEncode(string text, bool keepSlash)
    {
        var sb = new StringBuilder(text.Length + 16);
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            var c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '~' || (keepSlash && c == '/'))
            {
                sb.Append(c);
            }
            else
            {
                sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return sb.ToString();
    }
}
