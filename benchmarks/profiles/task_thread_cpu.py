#!/usr/bin/env python3
"""Where the MLP batching jobs' task threads spend CPU, from async-profiler's collapsed stacks with thread names
(agent option threads,collapsed, event=itimer). Usage: task_thread_cpu.py FILE.collapsed"""
import sys,collections,re
f=sys.argv[1]
per=collections.defaultdict(list)
timer=[0]
for line in open(f):
    stack,_,n=line.rstrip().rpartition(' '); n=int(n)
    fr=stack.split(';')
    if 'ONNX inference' not in fr[0] or 'Map -> Map' in fr[0]: continue
    if 'Time Trigger' in fr[0]:
        timer[0]+=n; continue
    per[fr[0]].append((fr,n))
groups=collections.defaultdict(lambda:[0,collections.Counter(),collections.Counter()])
for t,lst in per.items():
    kind='latency' if any('Paced' in ';'.join(fr) for fr,n in lst) else 'batched'
    g=groups[kind]
    for fr,n in lst:
        g[0]+=n
        seen=set()
        for x in fr[1:]:
            x=re.sub(r'\$\$Lambda.*','$$Lambda',x)
            if x not in seen: g[1][x]+=n; seen.add(x)
        # bucket classification
        s=';'.join(fr)
        if 'OrtSession.run' in s:
            b='ORT run (JNI + native)' if 'libonnxruntime' in s or 'Java_ai_onnxruntime_OrtSession_run' in s else 'OrtSession.run Java side'
            if 'Result' in s and 'libonnxruntime' not in s: b='OrtSession.run Java side'
        elif 'RecordBuffer.own' in s: b='object-reuse copy (own)'
        elif 'BatchOutputs.load' in s: b='output copy-out (BatchOutputs.load)'
        elif 'TensorPacker.pack' in s: b='pack (tensors)'
        elif 'InferenceRunner.decode' in s: b='decode (slice per record)'
        elif 'RecordBuffer.add' in s: b='encode + stage (RecordBuffer.add)'
        elif 'RecordBuffer.complete' in s: b='emit (complete -> chain)'
        elif 'RecordBuffer.take' in s: b='take (metrics)'
        elif 'NumberSequence' in s or 'FromPool' in s: b='source + FromPool'
        elif 'InferenceRunner.open' in s or 'ModelServing.open' in s: b='open (once)'
        elif 'Meter' in s: b='Meter'
        else: b='other: '+fr[-1][:60]
        g[2][b]+=n
print('Time Trigger threads (all jobs):',timer[0],'samples')
for k,g in groups.items():
    print('==',k,'samples',g[0])
    for b,n in g[2].most_common(22): print(f'  {100*n/g[0]:5.1f}% {b}')
