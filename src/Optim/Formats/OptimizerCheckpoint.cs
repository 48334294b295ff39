using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using static TorchSharp.torch;

namespace Optim.Formats;

/// <summary>
/// An optimizer's state dict in Optim's checkpoint container (<see cref="CheckpointWriter"/>, kind "optimizer"):
/// <code>
/// section "optimizer":   type (string)
/// section "param_group": initial_lr (double) | params (list of longs) | param_names (list of strings; only when the
///                        optimizer was built from named parameters) | every hyperparameter by PyTorch's name, as
///                        its declared type
///   ... one per group, in order
/// section "state":       id (long) | every state tensor by PyTorch's key, in order
///   ... one per parameter that has state
/// section "global":      the optimizer-wide state (tensor, list of tensors, double, long, bool, string); only when
///                        there is any
/// </code>
/// Version 1 files (one payload built in memory, at most 2 GiB) are still read (<see cref="CheckpointV1"/>).
/// </summary>
internal static class OptimizerCheckpoint
{
    /// <summary>The container kind of optimizer checkpoints.</summary>
    public const string Kind = "optimizer";

    private const string InitialLr = "initial_lr", Params = "params", ParamNames = "param_names", Id = "id";

    /// <summary>Writes <paramref name="stateDict"/>; it is checked first, so a dict that cannot be written writes nothing.</summary>
    /// <exception cref="ObjectDisposedException">A tensor of the dict was disposed.</exception>
    /// <exception cref="ArgumentException">A hyperparameter or optimizer-wide value of a type checkpoints cannot hold.</exception>
    public static void Write(Stream stream, OptimizerStateDict stateDict)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CheckWritable(stateDict);
        using var w = new CheckpointWriter(stream, Kind);
        WriteSections(w, stateDict);
        w.Finish();
    }

    /// <summary>Checks that <paramref name="stateDict"/> can be written (before anything is).</summary>
    /// <inheritdoc cref="Write" path="/exception"/>
    public static void CheckWritable(OptimizerStateDict stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        stateDict.ThrowIfDisposed();
        foreach (var group in stateDict.ParamGroups)
        {
            if (group.ParamNames is { } names && (names.Count != group.Params.Count || names.Any(n => n is null)))
                throw new ArgumentException($"a group has {names.Count} param_names for {group.Params.Count} params, or a null name.", nameof(stateDict));
            foreach (var (name, value) in group.Hyperparameters)
            {
                if (name is InitialLr or Params or ParamNames)
                    throw new ArgumentException($"a hyperparameter cannot be called '{name}' (the name of a group field).", nameof(stateDict));
                if (!IsHyperparameterValue(value))
                    throw new ArgumentException($"hyperparameter '{name}' has unsupported type {value?.GetType().Name}.", nameof(stateDict));
            }
        }
        foreach (var (key, value) in stateDict.Global) OptimizerGlobalState.Normalize(value, key);
    }

    /// <summary>
    /// Writes the sections of <paramref name="stateDict"/> (checked by <see cref="CheckWritable"/>) into a container
    /// another checkpoint (a training checkpoint) is writing.
    /// </summary>
    public static void WriteSections(CheckpointWriter w, OptimizerStateDict stateDict)
    {
        w.BeginSection("optimizer");
        w.Write("type", stateDict.OptimizerType);
        foreach (var group in stateDict.ParamGroups)
        {
            w.BeginSection("param_group");
            w.Write(InitialLr, group.InitialLr);
            w.Write(Params, group.Params.Select(id => (long)id).ToArray());
            if (group.ParamNames is { } names) w.Write(ParamNames, names);
            foreach (var (name, value) in group.Hyperparameters) w.Write(name, value);
        }
        foreach (var (id, entries) in stateDict.State)
        {
            w.BeginSection("state");
            w.Write(Id, (long)id);
            foreach (var (key, tensor) in entries) w.Write(key, tensor);
        }
        if (stateDict.Global.Count > 0)
        {
            w.BeginSection("global");
            foreach (var (key, value) in stateDict.Global) w.Write(key, OptimizerGlobalState.Normalize(value, key));
        }
    }

    /// <summary>
    /// Reads a checkpoint of version 1 or 2 in one pass. The state dict's tensors are new CPU tensors the caller owns
    /// (detached from dispose scopes: <see cref="OptimizerStateDict.DisposeTensors"/> them). Nothing is returned before
    /// the checksum over the whole file has been verified.
    /// </summary>
    /// <param name="stream">The stream, positioned at the checkpoint; left just after it.</param>
    /// <param name="schema">The option schema of the optimizer it is for (to read enum hyperparameters), or null.</param>
    /// <exception cref="InvalidDataException">Not a checkpoint, an unsupported version, truncated or corrupted.</exception>
    public static OptimizerStateDict Read(Stream stream, OptionSchema? schema = null)
    {
        using var reader = CheckpointReader.Open(stream);
        if (reader.Version == 1) return CheckpointV1.ReadAfterHeader(reader.Stream);
        if (reader.Kind != Kind) throw new InvalidDataException($"the checkpoint holds a '{reader.Kind}', not an optimizer's state.");

        var parser = new SectionParser();
        while (true)
        {
            var kind = reader.Next(out var name, out var value);
            if (kind == CheckpointReader.RecordKind.End) break;
            if (kind == CheckpointReader.RecordKind.Section)
            {
                if (!SectionParser.Owns(name)) throw new InvalidDataException($"an optimizer checkpoint has no section '{name}'.");
                parser.BeginSection(name);
            }
            else
            {
                parser.Entry(name, value);
            }
        }
        parser.End();
        reader.Finish();

        // Only now, with the checksum verified, is the content interpreted: what does not fit is an ArgumentException.
        var result = parser.Build(schema);
        foreach (var t in result.Tensors()) reader.Keep(t);
        return result;
    }

    /// <summary>
    /// Parses the sections <see cref="WriteSections"/> writes, record by record, wherever they appear: in an optimizer
    /// checkpoint or in a training checkpoint between other sections. Structural damage is an
    /// <see cref="InvalidDataException"/>; <see cref="Build"/> (after the checksum was verified) interprets the content.
    /// </summary>
    internal sealed class SectionParser
    {
        private readonly List<GroupBuilder> _groups = new();
        private readonly SortedDictionary<int, IReadOnlyDictionary<string, Tensor>> _state = new();
        private readonly Dictionary<string, object> _global = new();
        private readonly List<KeyValuePair<string, object>> _globalOrder = new();
        private string? _type;
        private string? _section;
        private GroupBuilder? _group;
        private ParameterState? _entries;
        private int _sections;
        private bool _seenGlobal;
        private bool _ended;

        /// <summary>Whether a section of this name belongs to an optimizer's state.</summary>
        public static bool Owns(string section) => section is "optimizer" or "param_group" or "state" or "global";

        /// <summary>Whether any section was read.</summary>
        public bool Started => _sections > 0;

        /// <summary>Starts section <paramref name="name"/> (one that <see cref="Owns"/>).</summary>
        public void BeginSection(string name)
        {
            if (_ended) throw new InvalidDataException($"the optimizer's section '{name}' comes after other sections.");
            EndSection();
            if ((_sections++ == 0) != (name == "optimizer"))
                throw new InvalidDataException("an optimizer's state starts with its 'optimizer' section, and has one.");
            switch (name)
            {
                case "optimizer": break;
                case "param_group": _group = new GroupBuilder(_groups.Count); break;
                case "state": break;
                case "global":
                    if (_seenGlobal) throw new InvalidDataException("the checkpoint has two 'global' sections.");
                    _seenGlobal = true;
                    break;
                default: throw new InvalidDataException($"an optimizer's state has no section '{name}'.");
            }
            _section = name;
        }

        /// <summary>An entry of the current section.</summary>
        public void Entry(string name, object? value)
        {
            switch (_section)
            {
                case "optimizer" when name == "type" && value is string s && _type is null:
                    _type = s;
                    break;
                case "param_group":
                    _group!.Add(name, value);
                    break;
                case "state" when _entries is null:
                    if (name != Id || value is not long id || id < 0 || id > int.MaxValue)
                        throw new InvalidDataException("a 'state' section starts with the parameter's id.");
                    _entries = new ParameterState { IsInitialized = true };
                    if (!_state.TryAdd((int)id, _entries)) throw new InvalidDataException($"parameter id {id} has state twice.");
                    break;
                case "state":
                    if (value is not Tensor tensor) throw new InvalidDataException($"state '{name}' is not a tensor.");
                    if (_entries!.ContainsKey(name)) throw new InvalidDataException($"a parameter has state '{name}' twice.");
                    _entries.Set(name, tensor);
                    break;
                case "global":
                    if (value is not (Tensor or Tensor[] or double or long or bool or string))
                        throw new InvalidDataException($"optimizer-wide state '{name}' has a value of a type it cannot have.");
                    if (!_global.TryAdd(name, value)) throw new InvalidDataException($"optimizer-wide state '{name}' appears twice.");
                    _globalOrder.Add(new(name, value));
                    break;
                default:
                    throw new InvalidDataException($"the checkpoint has an unexpected entry '{name}' in section '{_section ?? "(none)"}'.");
            }
        }

        /// <summary>After the optimizer's last section: checks that the state is complete.</summary>
        public void End()
        {
            EndSection();
            _section = null;
            _ended = true;
            if (_type is null) throw new InvalidDataException("the checkpoint names no optimizer type.");
        }

        /// <summary>The state dict (its tensors are the reader's); call after the checksum was verified.</summary>
        /// <exception cref="ArgumentException">An enum hyperparameter of a type the optimizer does not have.</exception>
        public OptimizerStateDict Build(OptionSchema? schema)
        {
            schema ??= SchemaOf(_type);
            return new OptimizerStateDict(_type!, _state, _groups.Select(g => g.Build(schema)).ToList())
            {
                Global = _globalOrder.ToDictionary(e => e.Key, e => e.Value),
            };
        }

        private void EndSection()
        {
            _group?.Validate();
            if (_group is not null) _groups.Add(_group);
            _group = null;
            _entries = null;
        }
    }

    private static bool IsHyperparameterValue(object? value) =>
        value is null or double or bool or int or long or string or Enum or ValueTuple<double, double> or IReadOnlyList<double>;

    private static OptionSchema? SchemaOf(string? type) =>
        type is null ? null : AlgorithmCatalog.All.FirstOrDefault(a => a.Name == type)?.Schema;

    // One "param_group" section as it is read.
    private sealed class GroupBuilder(int index)
    {
        private readonly List<KeyValuePair<string, object?>> _hyperparameters = new();
        private double? _initialLr;
        private List<int>? _params;
        private string[]? _paramNames;

        public void Add(string name, object? value)
        {
            switch (name)
            {
                case InitialLr:
                    _initialLr = _initialLr is null && value is double d ? d : throw Malformed(name);
                    break;
                case Params:
                    if (_params is not null || value is not long[] ids) throw Malformed(name);
                    _params = ids.Select(id => id is >= 0 and <= int.MaxValue ? (int)id : throw Malformed(name)).ToList();
                    break;
                case ParamNames:
                    _paramNames = _paramNames is null && value is string[] names ? names : throw Malformed(name);
                    break;
                default:
                    if (_hyperparameters.Exists(h => h.Key == name)) throw new InvalidDataException($"group {index} has hyperparameter '{name}' twice.");
                    _hyperparameters.Add(new(name, value));
                    break;
            }
        }

        public void Validate()
        {
            if (_initialLr is null) throw Malformed(InitialLr);
            if (_params is null) throw Malformed(Params);
            if (_paramNames is not null && _paramNames.Length != _params.Count) throw Malformed(ParamNames);
        }

        public ParamGroupState Build(OptionSchema? schema) => new(
            _hyperparameters.Select(h => new KeyValuePair<string, object?>(h.Key, h.Value is CheckpointEnum e ? Enum(h.Key, e, schema) : h.Value)).ToList(),
            _initialLr!.Value,
            _params!)
        {
            ParamNames = _paramNames,
        };

        private InvalidDataException Malformed(string field) => new($"group {index} of the checkpoint has a missing or malformed '{field}'.");

        // An enum is read as the type the schema declares; a file naming another type is data this optimizer does not take.
        private static object Enum(string name, CheckpointEnum value, OptionSchema? schema)
        {
            var declared = schema?.Find(name)?.ValueType ?? typeof(Implementation).Assembly.GetType(value.TypeName);
            if (declared is null || !declared.IsEnum)
                throw new ArgumentException($"hyperparameter '{name}' is a {value.TypeName}, which this optimizer does not have.");
            return value.As(declared)
                ?? throw new ArgumentException($"hyperparameter '{name}' is {value.TypeName}.{value.Member}; the optimizer expects a {declared.FullName}.");
        }
    }
}
