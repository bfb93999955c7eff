using System.CommandLine;
using CcRelay.Cli;

namespace CcRelay.Host.Tests.Cli;

/// <summary>
/// A throwaway working directory, home directory and environment for running the CLI in-process. Commands
/// read <see cref="Variables"/> instead of the process environment, so tests stay independent in parallel.
/// </summary>
internal sealed class CliSandbox : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cc-relay-cli-").FullName;

    public CliSandbox()
    {
        Directory.CreateDirectory(WorkingDirectory);
        Directory.CreateDirectory(Home);
    }

    public string WorkingDirectory => Path.Combine(_root, "work");

    public string Home => Path.Combine(_root, "home");

    /// <summary>The environment variables the commands see; nothing else is set.</summary>
    public Dictionary<string, string> Variables { get; } = [];

    /// <summary>What the commands read on standard input.</summary>
    public string StandardInput { get; set; } = "";

    public CliEnvironment Environment => new(name => Variables.GetValueOrDefault(name), WorkingDirectory, Home)
    {
        Input = () => new StringReader(StandardInput),
    };

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Runs <c>cc-relay</c> with <paramref name="args"/>: the exit code, stdout and stderr.</summary>
    public async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await Program.RunAsync(args, Environment, new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>Writes a file under the working directory (creating its directories) and returns its full path.</summary>
    public string Write(string relativePath, string text)
    {
        var path = Path.Combine(WorkingDirectory, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }
}
