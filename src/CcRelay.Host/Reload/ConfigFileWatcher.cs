using System.Runtime.InteropServices;
using System.Text;

namespace CcRelay.Host.Reload;

/// <summary>
/// Watches the config file for a new content — written in place, or replaced by a rename onto its name (as editors
/// save) — and calls back for it alone, never for the other files in its directory.
/// <code>
///   Linux:  inotify on the directory for IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_ATTRIB ──► [thread of its own] ──► name is the config's? ──► changed()
///   other, or no inotify instance to be had:  FileSystemWatcher on the directory, filtered to the file's name
/// </code>
/// NOTE: why not FileSystemWatcher on Linux: it asks the kernel for every modification in the directory (IN_MODIFY;
/// inotify cannot watch a name that an editor replaces), so a usage ledger or log file beside the config woke it at
/// every write — a thread wake-up, a queued event and a thread-pool work item, only for the name to be compared and
/// dropped. A file kept open and appended to (the ledger, the log) raises none of the events asked for here: its
/// writes never reach this process. A file closed after writing (another program's) still does, once per close.
/// </summary>
internal sealed class ConfigFileWatcher : IDisposable
{
    private const uint InAttrib = 0x4;
    private const uint InCloseWrite = 0x8;
    private const uint InMovedTo = 0x80;
    private const uint InCreate = 0x100;
    private const uint InQueueOverflow = 0x4000;
    private const uint InIgnored = 0x8000;
    private const uint InOnlyDir = 0x0100_0000;
    private const int InCloexec = 0x8_0000;

    private readonly string _name;
    private readonly Action _changed;
    private readonly Lock _gate = new();
    private readonly FileSystemWatcher? _fallback;

    // Linux: guarded by _gate once the thread runs; -1 once closed
    private int _fd = -1;
    private readonly int _wd = -1;
    private volatile bool _disposed;
    private int _woken;

    /// <summary>Starts watching <paramref name="path"/> (a full path); <paramref name="changed"/> runs on the watcher's thread.</summary>
    public ConfigFileWatcher(string path, Action changed)
    {
        var directory = Path.GetDirectoryName(path)!;
        _name = Path.GetFileName(path);
        _changed = changed;
        if (OperatingSystem.IsLinux())
        {
            _fd = InotifyInit(InCloexec);
            _wd = _fd < 0 ? -1 : InotifyAddWatch(_fd, directory, InCloseWrite | InMovedTo | InCreate | InAttrib | InOnlyDir);
            if (_wd >= 0)
            {
                new Thread(Run) { IsBackground = true, Name = "cc-relay config watcher" }.Start();
                return;
            }

            // no inotify instance or watch to be had (the user's limit, max_user_instances, is reached): the fallback,
            // whose one inotify instance is shared by every FileSystemWatcher of the process
            if (_fd >= 0)
            {
                _ = Close(_fd);
                _fd = -1;
            }
        }

        _fallback = new FileSystemWatcher(directory, _name)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            IncludeSubdirectories = false,
        };
        FileSystemEventHandler onChange = (_, e) => Seen(e.Name);
        _fallback.Changed += onChange;
        _fallback.Created += onChange;
        _fallback.Renamed += (_, e) => Seen(e.Name);
        _fallback.EnableRaisingEvents = true;
    }

    /// <summary>How many times the watcher woke up for a file other than the config (tests: a sibling's writes must not wake it).</summary>
    public int WokenByOthers => Volatile.Read(ref _woken);

    /// <summary>Stops watching.</summary>
    public void Dispose()
    {
        _disposed = true;
        _fallback?.Dispose();
        lock (_gate)
        {
            // the kernel answers with IN_IGNORED, which ends the thread's read; the thread closes the descriptor
            if (_fd >= 0 && _wd >= 0)
            {
                _ = InotifyRemoveWatch(_fd, _wd);
            }
        }
    }

    private void Seen(string? name)
    {
        if (string.Equals(name, _name, StringComparison.Ordinal))
        {
            try
            {
                _changed();
            }
            catch (ObjectDisposedException) when (_disposed)
            {
                // a change seen while the relay stops: nothing left to reload
            }
        }
        else
        {
            Interlocked.Increment(ref _woken);
        }
    }

    private void Run()
    {
        var buffer = new byte[4096];
        try
        {
            while (!_disposed)
            {
                var read = (int)Read(_fd, buffer, buffer.Length);
                if (read <= 0)
                {
                    if (read < 0 && Marshal.GetLastPInvokeError() == 4)
                    {
                        continue; // EINTR
                    }

                    return;
                }

                // struct inotify_event { int wd; uint32_t mask; uint32_t cookie; uint32_t len; char name[len]; }
                for (var at = 0; at + 16 <= read;)
                {
                    var mask = BitConverter.ToUInt32(buffer, at + 4);
                    var length = BitConverter.ToInt32(buffer, at + 12);
                    var name = buffer.AsSpan(at + 16, length);
                    at += 16 + length;
                    if ((mask & InIgnored) != 0)
                    {
                        return; // the watch is gone (Dispose, or the directory was removed)
                    }

                    // an overflow (events were lost, the config's among them perhaps) counts as a change of the config
                    var end = name.IndexOf((byte)0);
                    Seen((mask & InQueueOverflow) != 0 ? _name : Encoding.UTF8.GetString(end < 0 ? name : name[..end]));
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                _ = Close(_fd);
                _fd = -1;
            }
        }
    }

    [DllImport("libc", EntryPoint = "inotify_init1", SetLastError = true)]
    private static extern int InotifyInit(int flags);

    [DllImport("libc", EntryPoint = "inotify_add_watch", SetLastError = true)]
    private static extern int InotifyAddWatch(int fd, [MarshalAs(UnmanagedType.LPUTF8Str)] string pathname, uint mask);

    [DllImport("libc", EntryPoint = "inotify_rm_watch", SetLastError = true)]
    private static extern int InotifyRemoveWatch(int fd, int wd);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    private static extern nint Read(int fd, byte[] buffer, nint count);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);
}
