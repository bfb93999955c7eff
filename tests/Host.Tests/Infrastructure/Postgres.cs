using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>
/// A test that needs a real PostgreSQL server: it runs when <c>CC_RELAY_TEST_PG</c> names one (an Npgsql connection
/// string; tests/SharedState/run.sh, run by tests/run-all.sh, starts a cluster and runs these tests with it) and is
/// reported as skipped otherwise, never as passed.
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (string.IsNullOrEmpty(Postgres.Server))
        {
            Skip = "no PostgreSQL: set CC_RELAY_TEST_PG (bash tests/SharedState/run.sh does)";
        }
    }
}

/// <summary>A database of its own per test on the server <c>CC_RELAY_TEST_PG</c> names, dropped at the end.</summary>
public sealed class Postgres : IAsyncDisposable
{
    private readonly string _name;

    private Postgres(string name, string connectionString)
    {
        _name = name;
        ConnectionString = connectionString;
    }

    /// <summary>The server's connection string, null when none is given.</summary>
    public static string? Server => Environment.GetEnvironmentVariable("CC_RELAY_TEST_PG");

    /// <summary>The test database's connection string.</summary>
    public string ConnectionString { get; }

    /// <summary>The host and port the connection string names.</summary>
    public (string Host, int Port) Endpoint
    {
        get
        {
            var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
            return (builder.Host!, builder.Port);
        }
    }

    public static async Task<Postgres> CreateAsync()
    {
        var name = "ccrelay_test_" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(Server) { Database = "postgres", Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new Postgres(name, new NpgsqlConnectionStringBuilder(Server) { Database = name }.ConnectionString);
    }

    /// <summary>The connection string through <paramref name="proxy"/> (same database).</summary>
    public string Through(TcpProxy proxy) =>
        new NpgsqlConnectionStringBuilder(ConnectionString) { Host = "127.0.0.1", Port = proxy.Port }.ConnectionString;

    /// <summary>Runs <paramref name="sql"/> and returns its first column, as text.</summary>
    public async Task<List<string?>> ColumnAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<string?>();
        while (await reader.ReadAsync())
        {
            values.Add(reader.IsDBNull(0) ? null : Convert.ToString(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture));
        }

        return values;
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(Server) { Database = "postgres", Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }
}

/// <summary>
/// A TCP forwarder on a loopback port in front of a server, which a test can cut (listener closed, every connection
/// reset: the server is "gone") and restore on the same port.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly string _host;
    private readonly int _port;
    private readonly List<TcpClient> _open = [];
    private readonly Lock _lock = new();
    private TcpListener? _listener;
    private CancellationTokenSource _cut = new();

    private TcpProxy(string host, int port)
    {
        _host = host;
        _port = port;
    }

    public int Port { get; private set; }

    public static TcpProxy Start(string host, int port)
    {
        var proxy = new TcpProxy(host, port);
        proxy.Listen(0);
        return proxy;
    }

    private void Listen(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _listener = listener;
        var cut = _cut.Token;
        _ = Task.Run(async () =>
        {
            while (!cut.IsCancellationRequested)
            {
                TcpClient inbound;
                try
                {
                    inbound = await listener.AcceptTcpClientAsync(cut);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }

                _ = Task.Run(() => PipeAsync(inbound, cut));
            }
        });
    }

    private async Task PipeAsync(TcpClient inbound, CancellationToken cut)
    {
        var outbound = new TcpClient();
        lock (_lock)
        {
            _open.Add(inbound);
            _open.Add(outbound);
        }

        try
        {
            await outbound.ConnectAsync(_host, _port, cut);
            var a = inbound.GetStream();
            var b = outbound.GetStream();
            await Task.WhenAny(a.CopyToAsync(b, cut), b.CopyToAsync(a, cut));
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            inbound.Dispose();
            outbound.Dispose();
        }
    }

    /// <summary>The server is gone: the listener closes and every connection through it is reset.</summary>
    public void Cut()
    {
        _cut.Cancel();
        _listener?.Stop();
        _listener = null;
        lock (_lock)
        {
            foreach (var client in _open)
            {
                try
                {
                    // a reset, as a dead server's host would answer
                    if (client.Client is { } socket)
                    {
                        socket.LingerState = new LingerOption(true, 0);
                    }
                }
                catch (Exception e) when (e is ObjectDisposedException or SocketException)
                {
                }

                client.Dispose();
            }

            _open.Clear();
        }
    }

    /// <summary>The server is back, on the same port.</summary>
    public void Restore()
    {
        _cut.Dispose();
        _cut = new CancellationTokenSource();
        Listen(Port);
    }

    public ValueTask DisposeAsync()
    {
        if (!_cut.IsCancellationRequested)
        {
            Cut();
        }

        _cut.Dispose();
        return ValueTask.CompletedTask;
    }
}
