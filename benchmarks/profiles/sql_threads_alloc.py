#!/usr/bin/env python3
"""Allocation per row of the --sql case's async paths (the last SQL job's task thread and our worker thread), from
JFR allocation samples: jfr print --json --events jdk.ObjectAllocationSample rec.jfr > a.json.
Usage: sql_threads_alloc.py a.json ROWS_OF_THE_LAST_JOB"""
import json,sys,collections
d=json.load(open(sys.argv[1])); rows=float(sys.argv[2])
threads=collections.defaultdict(list)
for e in d['recording']['events']:
    v=e['values']; t=v.get('eventThread') or {}; name=t.get('javaName') or ''
    if name.startswith('Source: Sequence Source') : threads[('task',t.get('javaThreadId'))].append(v)
    elif name.startswith('onnx-ml-predict') or name.startswith('onnx-score'): threads[('worker',t.get('javaThreadId'))].append(v)
last={}
for (k,tid) in threads:
    if k not in last or tid>last[k]: last[k]=tid
for k in ('task','worker'):
    vs=threads[(k,last[k])]; tot=0; by=collections.Counter()
    for v in vs:
        w=v['weight']; tot+=w
        fr=[f['method']['type']['name'].split('/')[-1]+'.'+f['method']['name'] for f in (v['stackTrace']['frames'] if v.get('stackTrace') else [])]
        s=' < '.join(fr); cls=v['objectClass']['name'].split('/')[-1]
        if 'SqlBinding.values' in s or 'SqlTypes.fromArray' in s or 'pendingOf' in s: b='ours: row conversion ARRAY -> float[] (SqlBinding.values / args)'
        elif 'OnnxAsyncPredictFunction.asyncPredict' in s or 'OnnxAsyncScoreFunction.eval' in s: b='ours: request (Pending, queue)'
        elif 'decode' in s.lower() or 'toArrayData' in s: b='ours: decode (output float[] + ArrayData + row)'
        elif 'OrtSession' in s or 'TensorPacker' in s or 'RecordBuffer' in s or 'InferenceRunner' in s: b='ours: batch (encode, pack, run)'
        elif 'registerTimeout' in s or 'ScheduledThreadPool' in s or 'registerTimer' in s: b='Flink: timeout timer per row'
        elif 'Mailbox' in s or 'Mail.' in s: b='Flink: mailbox mail per row'
        elif 'OutputConversion' in s or 'toExternal' in s: b='Flink: output conversion RowData -> Row'
        elif 'ArrayDataSerializer' in s or 'InputConversion' in s or 'StreamExecCalc' in s or 'toInternal' in s: b='Flink: input conversion + CAST (ArrayData copies)'
        elif 'CompletableFuture' in s or 'ResultFuture' in s or 'AsyncWaitOperator' in s or 'QueueEntry' in s: b='Flink: futures and queue entries per row'
        elif 'FromPool' in s or 'Long.valueOf' in s or 'NumberSequence' in s: b='benchmark: source'
        else: b='other: '+cls+' '+' < '.join(fr[:3])
        by[b]+=w
    print(f'== {k} thread (last job): {tot/rows:,.0f} B per row sampled')
    for b,w in by.most_common(12): print(f'  {w/rows:6,.0f} B/row {100*w/tot:5.1f}%  {b[:130]}')
