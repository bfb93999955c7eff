using System.Buffers.Text;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Incremental HTTP/1.1 response parser (status line, headers, Content-Length / chunked / until-close body).
/// <see cref="Feed"/> hands de-framed body bytes to a callback; <see cref="Done"/> turns true after the last byte.
/// </summary>
internal sealed class ResponseParser
{
    private enum State
    {
        Head,
        Fixed,
        ChunkSize,
        ChunkData,
        ChunkDataEnd,
        Trailer,
        UntilClose,
        Done,
    }

    private readonly byte[] _line = new byte[16 * 1024];
    private int _lineLength;
    private State _state = State.Head;
    private long _remaining;
    private bool _sawStatus;
    private bool _chunked;
    private long _contentLength = -1;

    public int Status { get; private set; }

    public bool KeepAlive { get; private set; } = true;

    /// <summary>
    /// The upstream's own wait before its answer's head, from FakeUpstream's <c>bench-head-wait-us</c> header (which
    /// the proxies forward), in Stopwatch ticks; -1 when the response has none.
    /// </summary>
    public long UpstreamWaitTicks { get; private set; } = -1;

    public bool Done => _state == State.Done;

    public bool HeadDone => _state != State.Head;

    public bool ReadsUntilClose => _state == State.UntilClose;

    public void Reset()
    {
        _state = State.Head;
        _lineLength = 0;
        _remaining = 0;
        Status = 0;
        KeepAlive = true;
        UpstreamWaitTicks = -1;
        _sawStatus = false;
        _chunked = false;
        _contentLength = -1;
    }

    /// <summary>Consumes bytes; returns how many were used (less than all only once the response is done).</summary>
    public int Feed(ReadOnlySpan<byte> data, BodyCallback? onBody)
    {
        var used = 0;
        while (used < data.Length && _state != State.Done)
        {
            var rest = data[used..];
            switch (_state)
            {
                case State.Head:
                case State.ChunkSize:
                case State.Trailer:
                    {
                        var nl = rest.IndexOf((byte)'\n');
                        var take = nl < 0 ? rest.Length : nl + 1;
                        if (_lineLength + take > _line.Length)
                        {
                            throw new InvalidDataException("header line too long");
                        }

                        rest[..take].CopyTo(_line.AsSpan(_lineLength));
                        _lineLength += take;
                        used += take;
                        if (nl >= 0)
                        {
                            var line = _line.AsSpan(0, _lineLength).TrimEnd("\r\n"u8);
                            OnLine(line);
                            _lineLength = 0;
                        }

                        break;
                    }

                case State.Fixed:
                case State.ChunkData:
                    {
                        var take = (int)Math.Min(rest.Length, _remaining);
                        onBody?.Invoke(rest[..take]);
                        _remaining -= take;
                        used += take;
                        if (_remaining == 0)
                        {
                            _state = _state == State.Fixed ? State.Done : State.ChunkDataEnd;
                            _remaining = 2;
                        }

                        break;
                    }

                case State.ChunkDataEnd:
                    {
                        var take = (int)Math.Min(rest.Length, _remaining);
                        _remaining -= take;
                        used += take;
                        if (_remaining == 0)
                        {
                            _state = State.ChunkSize;
                        }

                        break;
                    }

                case State.UntilClose:
                    onBody?.Invoke(rest);
                    used += rest.Length;
                    break;

                default:
                    return used;
            }
        }

        return used;
    }

    /// <summary>The peer closed the connection: ends an until-close body, otherwise the response is truncated.</summary>
    public bool OnEof()
    {
        if (_state == State.UntilClose)
        {
            _state = State.Done;
            return true;
        }

        return _state == State.Done;
    }

    private void OnLine(ReadOnlySpan<byte> line)
    {
        switch (_state)
        {
            case State.Head when !_sawStatus:
                // HTTP/1.1 200 OK
                if (line.Length < 12 || !Utf8Parser.TryParse(line.Slice(9, 3), out int status, out _))
                {
                    throw new InvalidDataException("bad status line");
                }

                Status = status;
                KeepAlive = !line.StartsWith("HTTP/1.0"u8);
                _sawStatus = true;
                _chunked = false;
                _contentLength = -1;
                break;

            case State.Head when line.Length == 0:
                _sawStatus = false;
                if (Status is 100 or 103)
                {
                    break; // informational: a real head follows
                }

                if (_chunked)
                {
                    _state = State.ChunkSize;
                }
                else if (_contentLength >= 0)
                {
                    _state = _contentLength == 0 ? State.Done : State.Fixed;
                    _remaining = _contentLength;
                }
                else if (Status is 204 or 304)
                {
                    _state = State.Done;
                }
                else
                {
                    _state = State.UntilClose;
                    KeepAlive = false;
                }

                break;

            case State.Head:
                {
                    var colon = line.IndexOf((byte)':');
                    if (colon <= 0)
                    {
                        break;
                    }

                    var name = line[..colon];
                    var value = line[(colon + 1)..].Trim(" \t"u8);
                    if (System.Text.Ascii.EqualsIgnoreCase(name, "content-length"u8))
                    {
                        Utf8Parser.TryParse(value, out _contentLength, out _);
                    }
                    else if (System.Text.Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
                    {
                        _chunked = value.IndexOf("chunked"u8) >= 0;
                    }
                    else if (System.Text.Ascii.EqualsIgnoreCase(name, "bench-head-wait-us"u8) && Utf8Parser.TryParse(value, out long waitUs, out _))
                    {
                        UpstreamWaitTicks = Clock.MsToTicks(waitUs / 1000.0);
                    }
                    else if (System.Text.Ascii.EqualsIgnoreCase(name, "connection"u8))
                    {
                        if (System.Text.Ascii.EqualsIgnoreCase(value, "close"u8))
                        {
                            KeepAlive = false;
                        }
                        else if (System.Text.Ascii.EqualsIgnoreCase(value, "keep-alive"u8))
                        {
                            KeepAlive = true;
                        }
                    }

                    break;
                }

            case State.ChunkSize:
                {
                    var semi = line.IndexOf((byte)';');
                    var hex = semi >= 0 ? line[..semi] : line;
                    if (!Utf8Parser.TryParse(hex.Trim(" \t"u8), out long size, out _, 'x'))
                    {
                        throw new InvalidDataException("bad chunk size");
                    }

                    if (size == 0)
                    {
                        _state = State.Trailer;
                    }
                    else
                    {
                        _state = State.ChunkData;
                        _remaining = size;
                    }

                    break;
                }

            case State.Trailer:
                if (line.Length == 0)
                {
                    _state = State.Done;
                }

                break;

            default:
                break;
        }
    }
}

/// <summary>Receives de-framed body bytes.</summary>
internal delegate void BodyCallback(ReadOnlySpan<byte> body);
