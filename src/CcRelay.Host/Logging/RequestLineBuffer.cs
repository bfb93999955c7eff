using System.Buffers;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Logging;

/// <summary>
/// Request lines kept as their facts, written as JSON later: per line a struct of its numbers, its strings
/// copied into one shared char buffer. The log file keeps the request line this way between the request's
/// thread and its writer thread, so the request pays for a copy, and the writer formats the batch's lines in
/// one loop (<see cref="WriteJson"/>). The JSON formatter writes every request line through it too (a buffer of
/// one line), so the file and the console write the same bytes by one code path.
/// <code>
///   Add(line)  ── copy: numbers → Entry, strings → chars ──►  [later, any thread]  WriteJson(i) ── format ──► UTF-8
/// </code>
/// NOTE: the strings are copied, not referenced: a line waits up to a batch interval (50 ms) for its writer,
/// and a request's own strings (its id, path, model names) kept that long would outlive a gen-0 collection and
/// be promoted, to be collected by a costlier gen-1 one. The copies live in arrays that are reused.
/// Not thread-safe: its owner guards it.
/// </summary>
internal sealed class RequestLineBuffer
{
    /// <summary>A batch buffer grown past this many lines or chars is replaced by a small one when cleared.</summary>
    private const int KeepAtMost = 16 * 1024;

    private Entry[] _entries = new Entry[64];
    private char[] _chars = new char[8 * 1024];
    private int _charCount;

    /// <summary>The lines added since the last <see cref="Clear"/>.</summary>
    public int Count { get; private set; }

    /// <summary>The chars the lines' strings take.</summary>
    public int CharCount => _charCount;

    /// <summary>
    /// Copies <paramref name="line"/>'s facts, logged at <paramref name="timestamp"/> (UTC), with the place it
    /// takes among its owner's other lines (<paramref name="position"/>, read back by <see cref="Position"/>).
    /// </summary>
    public void Add(RequestLine line, DateTime timestamp, string category, LogLevel level, int eventId, int position)
    {
        if (Count == _entries.Length)
        {
            Array.Resize(ref _entries, _entries.Length * 2);
        }

        var r = line.Record;
        var answer = r.Answer;
        var usage = answer?.Usage?.Value;
        ref var e = ref _entries[Count++];
        e.Position = position;
        e.Ticks = timestamp.Ticks;
        e.EventId = eventId;
        e.Level = level;
        e.Category = Copy(category);
        e.RequestId = Copy(r.RequestId);
        e.Method = Copy(r.Method);
        e.Path = Copy(r.Path);
        e.Status = r.Status;
        e.ClientKeyId = Copy(r.ClientKeyId);
        e.Provider = Copy(r.Provider);
        e.KeyId = Copy(r.KeyId);
        e.Model = Copy(r.Model);
        e.UpstreamModel = Copy(r.UpstreamModel);
        e.ResponseModel = Copy(answer?.Model?.Value);
        e.Stream = r.Stream;
        e.Result = Copy(r.Result);
        e.ErrorType = Copy(r.ErrorType);
        e.StopReason = Copy(answer?.StopReason?.Value);
        e.Attempts = r.Attempts;
        e.DurationMs = line.DurationMs;
        e.TtfbMs = line.TtfbMs;
        e.OverheadMs = line.OverheadMs;
        e.InputTokens = usage?.InputTokens;
        e.OutputTokens = usage?.OutputTokens;
        e.CacheReadTokens = usage?.CacheReadTokens;
        e.CacheWriteTokens = usage?.CacheWriteTokens;
        e.CostUsd = r.CostUsd;
        e.BytesIn = r.BytesIn;
        e.BytesOut = r.BytesOut;
    }

    /// <summary>The position line <paramref name="index"/> was added with.</summary>
    public int Position(int index) => _entries[index].Position;

    /// <summary>
    /// Writes line <paramref name="index"/> (its line feed included) as UTF-8: byte for byte what
    /// <see cref="System.Text.Json.Utf8JsonWriter"/> writes for the same object with relaxed escaping (see <see cref="Utf8LineWriter"/>).
    /// </summary>
    public void WriteJson(int index, IBufferWriter<byte> output)
    {
        ref readonly var e = ref _entries[index];
        var writer = new Utf8LineWriter(output);
        Span<byte> stamp = stackalloc byte[24];
        writer.Raw("{\"Timestamp\":\""u8);
        writer.Raw(JsonLineFormatter.Timestamp(new DateTime(e.Ticks, DateTimeKind.Utc), stamp));
        writer.Raw("\",\"EventId\":"u8);
        writer.Number(e.EventId);
        writer.Property(",\"LogLevel\":"u8, JsonLineFormatter.LevelName(e.Level));
        Property(ref writer, ",\"Category\":"u8, e.Category);
        writer.Raw(",\"State\":{"u8);
        var names = RequestLine.NameBytes;
        Property(ref writer, names[0], e.RequestId);
        Property(ref writer, names[1], e.Method);
        Property(ref writer, names[2], e.Path);
        writer.Property(names[3], e.Status);
        Property(ref writer, names[4], e.ClientKeyId);
        Property(ref writer, names[5], e.Provider);
        Property(ref writer, names[6], e.KeyId);
        Property(ref writer, names[7], e.Model);
        Property(ref writer, names[8], e.UpstreamModel);
        Property(ref writer, names[9], e.ResponseModel);
        writer.Property(names[10], e.Stream);
        Property(ref writer, names[11], e.Result);
        Property(ref writer, names[12], e.ErrorType);
        Property(ref writer, names[13], e.StopReason);
        writer.Property(names[14], e.Attempts);
        writer.Property(names[15], e.DurationMs, decimals: 2);
        writer.Property(names[16], e.TtfbMs, decimals: 2);
        writer.Property(names[17], e.OverheadMs, decimals: 3);
        writer.Property(names[18], e.InputTokens);
        writer.Property(names[19], e.OutputTokens);
        writer.Property(names[20], e.CacheReadTokens);
        writer.Property(names[21], e.CacheWriteTokens);
        writer.Property(names[22], e.CostUsd);
        writer.Property(names[23], e.BytesIn);
        writer.Property(names[24], e.BytesOut);
        writer.Raw("}}"u8);
        writer.Raw(JsonLineFormatter.NewLine);
        writer.Flush();
    }

    /// <summary>Forgets every line; arrays a burst grew past <see cref="KeepAtMost"/> are let go.</summary>
    public void Clear()
    {
        Count = 0;
        _charCount = 0;
        if (_entries.Length > KeepAtMost)
        {
            _entries = new Entry[64];
        }

        if (_chars.Length > KeepAtMost * 64)
        {
            _chars = new char[8 * 1024];
        }
    }

    private void Property(ref Utf8LineWriter writer, ReadOnlySpan<byte> nameAndColon, Text text)
    {
        writer.Raw(nameAndColon);
        if (text.Length < 0)
        {
            writer.Raw("null"u8);
        }
        else
        {
            writer.String(_chars.AsSpan(text.Start, text.Length));
        }
    }

    private Text Copy(string? value)
    {
        if (value is null)
        {
            return new Text(0, -1);
        }

        if (_chars.Length - _charCount < value.Length)
        {
            Array.Resize(ref _chars, Math.Max(_chars.Length * 2, _charCount + value.Length));
        }

        value.CopyTo(_chars.AsSpan(_charCount));
        var text = new Text(_charCount, value.Length);
        _charCount += value.Length;
        return text;
    }

    /// <summary>A string copied into <see cref="_chars"/>; a length of -1 is null.</summary>
    private readonly record struct Text(int Start, int Length);

    /// <summary>One line's facts: <see cref="RequestLine"/>'s fields, with its log entry's.</summary>
    private struct Entry
    {
        public int Position;
        public long Ticks;
        public int EventId;
        public LogLevel Level;
        public Text Category;
        public Text RequestId;
        public Text Method;
        public Text Path;
        public int Status;
        public Text ClientKeyId;
        public Text Provider;
        public Text KeyId;
        public Text Model;
        public Text UpstreamModel;
        public Text ResponseModel;
        public bool Stream;
        public Text Result;
        public Text ErrorType;
        public Text StopReason;
        public int Attempts;
        public double DurationMs;
        public double TtfbMs;
        public double OverheadMs;
        public long? InputTokens;
        public long? OutputTokens;
        public long? CacheReadTokens;
        public long? CacheWriteTokens;
        public decimal? CostUsd;
        public long BytesIn;
        public long BytesOut;
    }
}
