#!/usr/bin/env escript
%%! -noshell
%% W4 from Erlang: one WebSocket connection, 100-byte binary echo, --inflight
%% messages in flight (each echo answered by a new send), --seconds after
%% --warmup seconds, through Gun's API: gunmetal's (default) or, with
%% --module gun and Gun's ebin directories in ERL_LIBS, Gun's own.
%% Prints "RESULT n=N s=T cpu=C" (C: user + sys seconds of the VM's OS
%% process, the library's threads included, over the measured part).
%% Not a test: a figure.
%%
%%   erl_ws.escript --port P [--path /ws] [--seconds 3] [--warmup 1]
%%                  [--inflight 100] [--size 100] [--module gunmetal|gun]
-mode(compile).

main(Args) ->
	O = parse(Args, #{port => undefined, path => "/ws", seconds => 3, warmup => 1,
		inflight => 100, size => 100, module => gunmetal}),
	Here = filename:dirname(filename:absname(escript:script_name())),
	code:add_patha(filename:join([Here, "..", "..", "bindings", "erlang_nif", "ebin"])),
	M = maps:get(module, O),
	{ok, _} = application:ensure_all_started(M),
	{ok, C} = M:open("127.0.0.1", maps:get(port, O), #{protocols => [http], retry => 0}),
	{ok, http} = M:await_up(C, 10000),
	Ref = M:ws_upgrade(C, maps:get(path, O)),
	receive
		{gun_upgrade, C, Ref, [<<"websocket">>], _} -> ok;
		Other -> io:format(standard_error, "upgrade failed: ~p~n", [Other]), halt(1)
	after 10000 -> io:format(standard_error, "no upgrade~n", []), halt(1)
	end,
	Size = maps:get(size, O),
	Payload = list_to_binary([$a + I rem 26 || I <- lists:seq(0, Size - 1)]),
	ok = M:ws_send(C, Ref, [{binary, Payload} || _ <- lists:seq(1, maps:get(inflight, O))]),
	Start = now_us(),
	Warm = Start + maps:get(warmup, O) * 1000000,
	loop(M, C, Ref, Payload, Warm, maps:get(seconds, O) * 1000000, 0, undefined).

%% Before Warm: warm-up. Then counts echoes until Secs (µs) have passed.
loop(M, C, Ref, Payload, Warm, Secs, N, T0) ->
	receive
		{gun_ws, C, Ref, {binary, Payload}} ->
			ok = M:ws_send(C, Ref, {binary, Payload}),
			case T0 of
				undefined ->
					case now_us() >= Warm of
						true -> loop(M, C, Ref, Payload, Warm, Secs, 0, {now_us(), proc_cpu()});
						false -> loop(M, C, Ref, Payload, Warm, Secs, 0, undefined)
					end;
				{T, Cpu} when N band 255 =:= 0 ->
					Now = now_us(),
					case Now - T >= Secs of
						true ->
							io:format("RESULT n=~b s=~.6f cpu=~.6f~n", [N + 1, (Now - T) / 1000000, proc_cpu() - Cpu]),
							halt(0);
						false -> loop(M, C, Ref, Payload, Warm, Secs, N + 1, T0)
					end;
				_ -> loop(M, C, Ref, Payload, Warm, Secs, N + 1, T0)
			end;
		{gun_ws, C, Ref, Frame} ->
			io:format(standard_error, "unexpected frame ~P~n", [Frame, 10]), halt(1);
		{gun_down, C, _, Reason, _} ->
			io:format(standard_error, "connection down: ~p~n", [Reason]), halt(1);
		_ -> loop(M, C, Ref, Payload, Warm, Secs, N, T0)
	after 10000 -> io:format(standard_error, "no echo for 10 s~n", []), halt(1)
	end.

now_us() -> erlang:monotonic_time(microsecond).

proc_cpu() ->
	{ok, B} = file:read_file("/proc/self/stat"),
	[_, AfterComm] = binary:split(B, <<") ">>),
	Fields = binary:split(AfterComm, <<" ">>, [global]),
	(binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))) / 100.

parse([], O) -> O;
parse(["--port", P|T], O) -> parse(T, O#{port => list_to_integer(P)});
parse(["--path", P|T], O) -> parse(T, O#{path => P});
parse(["--seconds", N|T], O) -> parse(T, O#{seconds => list_to_integer(N)});
parse(["--warmup", N|T], O) -> parse(T, O#{warmup => list_to_integer(N)});
parse(["--inflight", N|T], O) -> parse(T, O#{inflight => list_to_integer(N)});
parse(["--size", N|T], O) -> parse(T, O#{size => list_to_integer(N)});
parse(["--module", M|T], O) -> parse(T, O#{module => list_to_atom(M)});
parse([Other|_], _) -> io:format(standard_error, "unknown argument ~s~n", [Other]), halt(2).
