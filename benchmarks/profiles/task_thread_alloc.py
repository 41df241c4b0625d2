#!/usr/bin/env python3
"""Allocation of the MLP batching jobs' task threads per record, from JFR allocation samples
(jfr print --json --events jdk.ObjectAllocationSample rec.jfr > a.json). Usage: task_thread_alloc.py a.json RECORDS"""
import json,sys,collections
d=json.load(open(sys.argv[1])); records=float(sys.argv[2])
ev=d['recording']['events']
per=collections.defaultdict(list)
for e in ev:
    v=e['values']; t=v.get('eventThread') or {}
    name=t.get('javaName') or ''
    if 'ONNX inference' not in name or 'Map -> Map' in name or 'Time Trigger' in name: continue
    per[t.get('javaThreadId')].append(v)
tot=0; by=collections.Counter()
for tid,vs in per.items():
    if any('Paced' in json.dumps(v.get('stackTrace')) for v in vs[:2000]): continue
    for v in vs:
        w=v['weight']; tot+=w
        frames=[f['method']['type']['name'].split('/')[-1]+'.'+f['method']['name'] for f in (v['stackTrace']['frames'] if v.get('stackTrace') else [])]
        s=' < '.join(frames)
        cls=v['objectClass']['name'].split('/')[-1]
        if 'RecordBuffer.own' in s: b='object-reuse copy of the record (RecordBuffer.own)'
        elif 'BatchOutputs.load' in s: b='output copy-out per batch (getFloatBuffer heap copy)'
        elif 'OrtSession.run' in s or 'OrtSession$Result' in s: b='OrtSession.run: Result, maps, names, flags'
        elif 'BatchOutputs.slice' in s or 'decode' in s.lower(): b='decoder result array per record (slice)'
        elif 'inferShape' in s: b='record shape per record (RecordInputs.inferShape)'
        elif 'TensorPacker' in s or 'createTensor' in s or 'RowStaging' in s: b='input tensors per batch (pack)'
        elif 'NumberSequenceIterator' in s or 'Long.valueOf' in s: b='source: boxed Long per record'
        elif 'registerTimer' in s or 'ScheduledThreadPool' in s or 'Mailbox' in s: b='timers and mails'
        elif 'BatchPolicy' in s or 'open' in s: b='open/setup'
        else: b='other: '+cls+' '+' < '.join(frames[:3])
        by[b]+=w
print(f'task threads of the batched jobs: {tot/1e6:.1f} MB sampled, {tot/records:.0f} B per record over {records:.0f} records')
for b,w in by.most_common(14): print(f'  {w/records:6.0f} B/rec {100*w/tot:5.1f}%  {b[:140]}')
