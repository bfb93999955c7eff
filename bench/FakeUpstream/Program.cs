using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>
/// A deliberately small, allocation-light HTTP/1.1 server that plays an Anthropic Messages upstream:
/// <c>POST /v1/messages</c> answers a fixed JSON message, or (body has <c>"stream":true</c>) an SSE stream whose
/// events leave at known times and carry their send time (<c>"bench_ts"</c>, Stopwatch ticks = CLOCK_MONOTONIC ns)
/// so a client on the same machine can compute per-event delay.
/// The clouds' paths are served too (see <see cref="UpstreamConnection"/>), their credentials checked against
/// <c>--aws-key-id</c> / <c>--aws-secret</c> (SigV4) and <c>--vertex-token</c> (bearer); the counts of what passed and
/// failed are printed on exit as a <c>CHECKS …</c> line.
/// A request whose knobs ask for a head delay (<c>head_min_us</c>, <c>head_max_us</c>) waits for it before its answer,
/// drawn from a sequence seeded by <c>--seed</c> (default 22), one per lane (<see cref="HeadDelays"/>).
/// Usage: fake-upstream [--port N] [--aws-key-id K] [--aws-secret S] [--vertex-token T] [--seed N]
/// (port 0 = any free port; the chosen port is printed as "LISTENING N").
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var port = 0;
        var seed = 22UL;
        var (awsKeyId, awsSecret, vertexToken) = ("AKIABENCHFAKE0000000", "bench/fake/secret/key/0000000000000000000", "bench-vertex-token");
        for (var i = 0; i < args.Length - 1; i++)
        {
            switch (args[i])
            {
                case "--port": port = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--aws-key-id": awsKeyId = args[i + 1]; break;
                case "--aws-secret": awsSecret = args[i + 1]; break;
                case "--vertex-token": vertexToken = args[i + 1]; break;
                case "--seed": seed = ulong.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                default: break;
            }
        }

        var checks = new CloudChecks(awsKeyId, awsSecret, vertexToken);

        if (Stopwatch.Frequency != 1_000_000_000)
        {
            await Console.Error.WriteLineAsync($"warning: Stopwatch.Frequency={Stopwatch.Frequency}; bench_ts is not CLOCK_MONOTONIC ns");
        }

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(8192);
        var bound = ((IPEndPoint)listener.LocalEndPoint!).Port;
        Console.WriteLine($"LISTENING {bound}");
        Console.Out.Flush();

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.Cancel(); });

        var responses = new CannedResponses();
        var delays = new HeadDelays(seed);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var socket = await listener.AcceptAsync(stop.Token);
                socket.NoDelay = true;
                var connection = new UpstreamConnection(socket, responses, checks, delays, stop.Token);
                _ = Task.Run(connection.RunAsync);
            }
        }
        catch (OperationCanceledException)
        {
            // SIGTERM / SIGINT: exit cleanly.
        }

        Console.WriteLine(checks.Summary);

        return 0;
    }
}
