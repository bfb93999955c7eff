using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CcRelay.Bench.LoadGen;

/// <summary>An <c>http://127.0.0.1:port/path</c> target plus the exact request bytes sent to it.</summary>
internal sealed class Target
{
    private Target(IPEndPoint endPoint, string hostHeader, string path)
    {
        EndPoint = endPoint;
        HostHeader = hostHeader;
        Path = path;
    }

    public IPEndPoint EndPoint { get; }

    public string HostHeader { get; }

    public string Path { get; }

    public static Target Parse(string url)
    {
        var uri = new Uri(url);
        if (uri.Scheme != "http" || !IPAddress.TryParse(uri.Host, out var ip) || !IPAddress.IsLoopback(ip))
        {
            throw new ArgumentException($"only http://127.0.0.1:<port>/ targets are allowed, got {url}");
        }

        return new Target(new IPEndPoint(ip, uri.Port), $"{uri.Host}:{uri.Port}", uri.PathAndQuery);
    }

    /// <summary>
    /// Checks a URL wrk is pointed at: <c>http://</c> or <c>https://</c> (wrk speaks TLS, this tool's own clients do
    /// not), on a loopback address.
    /// </summary>
    public static void CheckWrkUrl(string url)
    {
        var uri = new Uri(url);
        if (uri.Scheme is not ("http" or "https") || !IPAddress.TryParse(uri.Host, out var ip) || !IPAddress.IsLoopback(ip))
        {
            throw new ArgumentException($"only http(s)://127.0.0.1:<port>/ targets are allowed, got {url}");
        }
    }

    /// <summary>
    /// Renders the request template: <c>__STREAM__</c> → true/false, <c>__BENCH__</c> → upstream knobs
    /// (<paramref name="firstMicros"/> ≥ 0: the gap between message_start and content_block_start, 0 = one write).
    /// </summary>
    public static string RenderBody(string templatePath, bool stream, int deltas, long intervalMicros, long firstMicros = -1) =>
        File.ReadAllText(templatePath).TrimEnd()
            .Replace("__STREAM__", stream ? "true" : "false", StringComparison.Ordinal)
            .Replace(
                "__BENCH__",
                $"cc-bench:deltas={deltas},interval_us={intervalMicros}" + (firstMicros >= 0 ? $",first_us={firstMicros}" : ""),
                StringComparison.Ordinal);

    public static IReadOnlyList<string> ReadHeaders(string headersPath) =>
        File.ReadAllLines(headersPath).Where(l => l.Contains(':', StringComparison.Ordinal) && !l.StartsWith('#')).ToArray();

    public byte[] BuildRequest(string body, IReadOnlyList<string> headers)
    {
        var bodyBytes = Encoding.UTF8.GetBytes(body);
        var sb = new StringBuilder();
        sb.Append("POST ").Append(Path).Append(" HTTP/1.1\r\nHost: ").Append(HostHeader).Append("\r\n");
        foreach (var h in headers)
        {
            sb.Append(h.Trim()).Append("\r\n");
        }

        sb.Append("Content-Length: ").Append(bodyBytes.Length).Append("\r\n\r\n");
        return [.. Encoding.ASCII.GetBytes(sb.ToString()), .. bodyBytes];
    }

    public Socket Connect()
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
        {
            NoDelay = true,
            ReceiveTimeout = 30_000,
            SendTimeout = 30_000,
        };
        s.Connect(EndPoint);
        return s;
    }

    public async Task<Socket> ConnectAsync(CancellationToken ct)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await s.ConnectAsync(EndPoint, ct);
        }
        catch
        {
            s.Dispose();
            throw;
        }

        return s;
    }
}
