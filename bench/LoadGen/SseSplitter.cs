using System.Buffers.Text;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Splits a de-framed SSE body into events (blank-line separated) and pulls the fake upstream's
/// <c>"bench_seq"</c> / <c>"bench_ts"</c> out of each one. Counts how many events each socket read completed.
/// </summary>
internal sealed class SseSplitter
{
    private byte[] _pending = new byte[8 * 1024];
    private int _length;
    private int _scanFrom;

    public SseSplitter() => Callback = Push;

    /// <summary>Cached delegate for <see cref="ResponseParser.Feed"/>.</summary>
    public BodyCallback Callback { get; }

    /// <summary>Events completed since the last <see cref="BeginRead"/>.</summary>
    public int CompletedThisRead { get; private set; }

    /// <summary>
    /// Events that completed in the same read as the next event although the upstream sent that next event at least
    /// <see cref="MinSendGapTicks"/> later: the earlier one was held back somewhere on the way.
    /// </summary>
    public int HeldBack { get; private set; }

    /// <summary>Same-read pairs the upstream itself sent closer together than <see cref="MinSendGapTicks"/> (not counted).</summary>
    public int UpstreamBursts { get; private set; }

    public long MinSendGapTicks { get; set; }

    public int Events { get; private set; }

    public int ForeignEvents { get; private set; }

    public int LastSeq { get; private set; } = -1;

    public bool OutOfOrder { get; private set; }

    public bool SawMessageStop { get; private set; }

    public long ReadTime { get; private set; }

    private long _previousTsThisRead = long.MinValue;

    /// <summary>Per-event delay (arrival − upstream send) in Stopwatch ticks.</summary>
    public List<long> Delays { get; } = new(128);

    /// <summary>Per-event upstream send time (<c>bench_ts</c>) in Stopwatch ticks.</summary>
    public List<long> SendTimes { get; } = new(128);

    public void Reset()
    {
        _length = 0;
        _scanFrom = 0;
        Events = 0;
        ForeignEvents = 0;
        LastSeq = -1;
        OutOfOrder = false;
        SawMessageStop = false;
        HeldBack = 0;
        UpstreamBursts = 0;
        Delays.Clear();
        SendTimes.Clear();
    }

    public void BeginRead(long readTime)
    {
        ReadTime = readTime;
        CompletedThisRead = 0;
        _previousTsThisRead = long.MinValue;
    }

    private void Push(ReadOnlySpan<byte> data)
    {
        if (_length + data.Length > _pending.Length)
        {
            Array.Resize(ref _pending, Math.Max(_pending.Length * 2, _length + data.Length));
        }

        data.CopyTo(_pending.AsSpan(_length));
        _length += data.Length;

        var start = 0;
        while (true)
        {
            var window = _pending.AsSpan(_scanFrom, _length - _scanFrom);
            var sep = window.IndexOf("\n\n"u8);
            var sepLength = 2;
            var crlf = window.IndexOf("\r\n\r\n"u8);
            if (crlf >= 0 && (sep < 0 || crlf < sep))
            {
                sep = crlf;
                sepLength = 4;
            }

            if (sep < 0)
            {
                _scanFrom = Math.Max(start, _length - 3);
                break;
            }

            var end = _scanFrom + sep;
            OnEvent(_pending.AsSpan(start, end - start));
            start = end + sepLength;
            _scanFrom = start;
        }

        if (start > 0)
        {
            Buffer.BlockCopy(_pending, start, _pending, 0, _length - start);
            _length -= start;
            _scanFrom = Math.Max(0, _scanFrom - start);
        }
    }

    private void OnEvent(ReadOnlySpan<byte> evt)
    {
        if (evt.Trim("\r\n"u8).Length == 0)
        {
            return;
        }

        Events++;
        CompletedThisRead++;
        var tsAt = evt.IndexOf("\"bench_ts\":"u8);
        var seqAt = evt.IndexOf("\"bench_seq\":"u8);
        if (tsAt < 0 || seqAt < 0
            || !Utf8Parser.TryParse(evt[(tsAt + 11)..], out long ts, out _)
            || !Utf8Parser.TryParse(evt[(seqAt + 12)..], out int seq, out _))
        {
            ForeignEvents++;
            return;
        }

        if (seq != LastSeq + 1)
        {
            OutOfOrder = true;
        }

        LastSeq = seq;
        Delays.Add(ReadTime - ts);
        SendTimes.Add(ts);
        if (_previousTsThisRead != long.MinValue)
        {
            if (ts - _previousTsThisRead >= MinSendGapTicks)
            {
                HeldBack++;
            }
            else
            {
                UpstreamBursts++;
            }
        }

        _previousTsThisRead = ts;
        if (evt.IndexOf("event: message_stop"u8) >= 0)
        {
            SawMessageStop = true;
        }
    }
}
