using System.Net.Sockets;

namespace CcRelay.Bench.LoadGen;

/// <summary>One keep-alive connection that runs SSE requests one after another and checks each stream.</summary>
internal sealed class StreamClient(Target target, byte[] request, int expectedEvents, double intervalMs) : IDisposable
{
    private readonly byte[] _buffer = new byte[16 * 1024];
    private readonly ResponseParser _parser = new();
    private Socket? _socket;

    public SseSplitter Splitter { get; } = new() { MinSendGapTicks = Clock.MsToTicks(intervalMs / 4) };

    /// <summary>
    /// Events that completed in the same socket read as the next event although the upstream sent the next one at
    /// least a quarter interval later, i.e. events held back and coalesced on the way (see <see cref="SseSplitter.HeldBack"/>).
    /// </summary>
    public int Coalesced => Splitter.HeldBack;

    /// <summary>Same-read pairs the upstream had sent back to back (its own timer was late); not the proxy's doing.</summary>
    public int UpstreamBursts => Splitter.UpstreamBursts;

    public string? Failure { get; private set; }

    /// <summary>When the last stream's request was sent (Stopwatch ticks, just before the socket write).</summary>
    public long SentAt { get; private set; }

    /// <summary>When the last stream's first event was complete at this client (the socket read that completed it).</summary>
    public long FirstEventAt { get; private set; }

    /// <summary>The upstream's own wait before the last stream's head (<see cref="ResponseParser.UpstreamWaitTicks"/>), -1: none said.</summary>
    public long UpstreamWaitTicks => _parser.UpstreamWaitTicks;

    /// <summary>Invoked once per stream when message_start arrives.</summary>
    public Action? OnFirstEvent { get; set; }

    /// <summary>Runs one stream; false (and <see cref="Failure"/>) if it did not complete exactly as the upstream sent it.</summary>
    public async Task<bool> RunOnceAsync(CancellationToken ct)
    {
        Splitter.Reset();
        Failure = null;
        _parser.Reset();
        var first = true;
        try
        {
            _socket ??= await target.ConnectAsync(ct);
            FirstEventAt = 0;
            SentAt = Clock.Now;
            await _socket.SendAsync(request, SocketFlags.None, ct);
            while (!_parser.Done)
            {
                var n = await _socket.ReceiveAsync(_buffer, SocketFlags.None, ct);
                Splitter.BeginRead(Clock.Now);
                if (n == 0)
                {
                    if (!_parser.OnEof())
                    {
                        return Fail("connection closed mid-stream");
                    }

                    break;
                }

                _parser.Feed(_buffer.AsSpan(0, n), Splitter.Callback);

                if (first && Splitter.Events > 0)
                {
                    first = false;
                    FirstEventAt = Splitter.ReadTime;
                    OnFirstEvent?.Invoke();
                }
            }

            if (!_parser.KeepAlive)
            {
                DropSocket();
            }
        }
        catch (OperationCanceledException)
        {
            return Fail("cancelled (time bound)");
        }
        catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
        {
            return Fail(e.GetType().Name + ": " + e.Message);
        }

        if (_parser.Status != 200)
        {
            return Fail($"status {_parser.Status}");
        }

        if (Splitter.Events - Splitter.ForeignEvents != expectedEvents || Splitter.OutOfOrder || !Splitter.SawMessageStop)
        {
            return Fail($"events {Splitter.Events - Splitter.ForeignEvents}/{expectedEvents}, out-of-order={Splitter.OutOfOrder}, stop={Splitter.SawMessageStop}");
        }

        return true;
    }

    public void Dispose() => DropSocket();

    private bool Fail(string why)
    {
        Failure = why;
        DropSocket();
        return false;
    }

    private void DropSocket()
    {
        _socket?.Dispose();
        _socket = null;
    }
}
