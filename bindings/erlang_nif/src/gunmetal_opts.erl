%% Gun's option maps as the JSON object libgunmetal takes (OTP 25 has no
%% json module, so the encoder is here), and the library's option errors
%% back as Gun's {options, Opt}.
-module(gunmetal_opts).

-export([to_json/1, ws_to_json/1, destination_to_json/1, option_error/2, encode/1, trace_names/0]).

%% gun_event's callbacks that libgunmetal emits (its "trace" option).
trace_names() ->
	[init, domain_lookup_start, domain_lookup_end, connect_start, connect_end,
		tls_handshake_start, tls_handshake_end, request_start, request_headers, request_end,
		push_promise_start, push_promise_end, response_start, response_inform, response_headers,
		response_trailers, response_end, ws_upgrade, ws_recv_frame_start, ws_recv_frame_header,
		ws_recv_frame_end, ws_send_frame_start, ws_send_frame_end, protocol_changed, origin_changed,
		transport_changed, cancel, disconnect, terminate].

%% to_json(Opts) -> {ok, iodata()} | {error, {options, Opt}}
to_json(Opts) when is_map(Opts) ->
	try
		Pairs = [convert(K, V) || {K, V} <- lists:sort(maps:to_list(Opts))],
		%% max_pending_body 0: the engine holds no body before UP (it would
		%% make gm_data wait for the connection, on a scheduler); the
		%% connection process holds it instead, as Gun's does.
		{ok, encode({obj, [P || P <- Pairs, P =/= skip] ++ [{<<"max_pending_body">>, 0}]})}
	catch throw:{bad_option, Opt} ->
		{error, {options, Opt}}
	end;
to_json(Opts) ->
	{error, {options, Opts}}.

%% gun:connect's destination map (host, port, username, password,
%% protocols, transport, tls_opts, tls_handshake_timeout) as the JSON
%% gm_connect takes; the library refuses unknown keys and bad values,
%% naming them. A value that has no JSON form: error({badarg, {Key, Value}}).
destination_to_json(D) when is_map(D) ->
	Pairs = [try dest_entry(K, V)
		catch throw:_ -> error({badarg, {K, V}})
		end || {K, V} <- lists:sort(maps:to_list(D))],
	iolist_to_binary(encode({obj, Pairs}));
destination_to_json(D) ->
	error({badarg, D}).

dest_entry(host, H) -> {<<"host">>, host(H)};
dest_entry(K, V) when K =:= username; K =:= password -> {atom_to_binary(K), str(V)};
dest_entry(protocols, L) when is_list(L) -> {<<"protocols">>, {arr, [protocol(P) || P <- L]}};
dest_entry(tls_opts, L) when is_list(L) ->
	{<<"tls_opts">>, {obj, [proplist_entry(tls_opts, L, E) || E <- L]}};
dest_entry(transport, ssl) -> {<<"transport">>, <<"tls">>};
dest_entry(K, V) when is_atom(K) -> {atom_to_binary(K), value(V)};
dest_entry(K, V) -> throw({bad_option, {K, V}}).

%% ws_upgrade/4's options.
ws_to_json(Opts) when is_map(Opts) ->
	try
		{ok, encode(value(maps:without([reply_to, tunnel], Opts)))}
	catch throw:{bad_option, _} ->
		error(badarg)
	end;
ws_to_json(_) ->
	error(badarg).

convert(supervise, V) when is_boolean(V) ->
	%% Implemented here (gunmetal:open links the connection process when
	%% false); the library refuses supervise = false, having no caller to
	%% link to.
	skip;
convert(cookie_store, {Mod, _}) when is_atom(Mod) ->
	%% Gun takes a store module; gunmetal has its own in-memory jar.
	{<<"cookie_store">>, true};
convert(retry_fun, F) when is_function(F) ->
	throw({bad_option, {retry_fun, F}});
convert(event_handler, {Mod, _State}) when is_atom(Mod) ->
	%% The library traces the callbacks the module exports (gun_event's);
	%% ConnPid calls them (gunmetal.erl).
	case code:ensure_loaded(Mod) of
		{module, Mod} ->
			{<<"trace">>, {arr, [atom_to_binary(N) || N <- trace_names(),
				erlang:function_exported(Mod, N, 2)]}};
		_ ->
			throw({bad_option, {event_handler, {Mod, '_'}}})
	end;
convert(event_handler, EH) ->
	throw({bad_option, {event_handler, EH}});
convert(trace, false) ->
	skip;
convert(trace, V) ->
	%% Gun's trace option turns on dbg tracing of the connection process:
	%% there is no such process to trace (use event_handler).
	throw({bad_option, {trace, V}});
convert(protocols, L) when is_list(L) ->
	{<<"protocols">>, {arr, [protocol(P) || P <- L]}};
convert(K, L) when K =:= tcp_opts; K =:= tls_opts ->
	case is_list(L) of
		true -> {atom_to_binary(K), {obj, [proplist_entry(K, L, E) || E <- L]}};
		false -> throw({bad_option, {K, L}})
	end;
convert(socks_opts, M) when is_map(M) ->
	{<<"socks_opts">>, {obj, [socks_entry(K, V) || {K, V} <- lists:sort(maps:to_list(M))]}};
convert(K, V) when is_atom(K) ->
	try {atom_to_binary(K), value(V)}
	catch throw:bad_value -> throw({bad_option, {K, V}})
	end;
convert(K, V) ->
	throw({bad_option, {K, V}}).

protocol({Name, Opts}) when is_atom(Name), is_map(Opts) ->
	{arr, [atom_to_binary(Name), value(Opts)]};
protocol(Name) when is_atom(Name) ->
	atom_to_binary(Name);
protocol(Other) ->
	throw({bad_option, {protocols, Other}}).

socks_entry(protocols, L) when is_list(L) -> {<<"protocols">>, {arr, [protocol(P) || P <- L]}};
socks_entry(tls_opts, L) when is_list(L) ->
	{<<"tls_opts">>, {obj, [proplist_entry(tls_opts, L, E) || E <- L]}};
socks_entry(auth, L) when is_list(L) ->
	{<<"auth">>, {arr, [case A of
		{username_password, U, P} -> {arr, [<<"username_password">>, str(U), str(P)]};
		_ when is_atom(A) -> atom_to_binary(A);
		_ -> throw({bad_option, {socks_opts, A}})
	end || A <- L]}};
socks_entry(host, H) -> {<<"host">>, host(H)};
socks_entry(K, V) when is_atom(K) ->
	try {atom_to_binary(K), value(V)}
	catch throw:bad_value -> throw({bad_option, {socks_opts, {K, V}}})
	end.

%% gen_tcp / ssl option lists as objects.
proplist_entry(_, _, A) when is_atom(A) -> {atom_to_binary(A), true};
proplist_entry(_, _, {ip, IP}) when is_tuple(IP) -> {<<"ip">>, ip(IP)};
proplist_entry(_, _, {server_name_indication, H}) -> {<<"server_name_indication">>, host(H)};
%% ssl's cacerts: DER binaries, or the #cert{der, otp} records of
%% public_key:cacerts_get() (OTP 25+); base64 DER for the library.
proplist_entry(K, L, {cacerts, Certs}) when is_list(Certs) ->
	{<<"cacerts">>, {arr, [case C of
		Der when is_binary(Der) -> base64:encode(Der);
		{cert, Der, _Otp} when is_binary(Der) -> base64:encode(Der);
		_ -> throw({bad_option, {K, L}})
	end || C <- Certs]}};
%% gen_tcp's {linger, {true, Sec}} | {linger, {false, _}}: the library's
%% seconds, or false.
proplist_entry(tcp_opts, _, {linger, {true, Sec}}) when is_integer(Sec), Sec >= 0 -> {<<"linger">>, Sec};
proplist_entry(tcp_opts, _, {linger, {false, _}}) -> {<<"linger">>, false};
proplist_entry(_, _, {versions, Vs}) when is_list(Vs) ->
	{<<"versions">>, {arr, [atom_to_binary(V) || V <- Vs, is_atom(V)]}};
proplist_entry(K, L, {Key, V}) when is_atom(Key) ->
	try {atom_to_binary(Key), value(V)}
	catch throw:bad_value -> throw({bad_option, {K, L}})
	end;
proplist_entry(K, L, _) ->
	throw({bad_option, {K, L}}).

host(H) when is_atom(H) -> atom_to_binary(H);
host(H) when is_tuple(H) -> ip(H);
host(H) -> str(H).

ip(IP) ->
	case inet:ntoa(IP) of
		{error, _} -> throw(bad_value);
		S -> list_to_binary(S)
	end.

str(B) when is_binary(B) -> B;
str(L) when is_list(L) ->
	case unicode:characters_to_binary(L) of
		B when is_binary(B) -> B;
		_ -> throw(bad_value)
	end;
str(A) when is_atom(A) -> atom_to_binary(A);
str(_) -> throw(bad_value).

%% A generic value: maps are objects, strings are strings, lists arrays.
value(true) -> true;
value(false) -> false;
value(undefined) -> null;
value(A) when is_atom(A) -> atom_to_binary(A);
value(I) when is_integer(I) -> I;
value(F) when is_float(F) -> F;
value(B) when is_binary(B) -> str_check(B);
value(M) when is_map(M) ->
	{obj, [{key(K), value(V)} || {K, V} <- lists:sort(maps:to_list(M))]};
value([]) -> {arr, []};
value(L) when is_list(L) ->
	case io_lib:printable_unicode_list(L) of
		true -> str(L);
		false -> {arr, [value(E) || E <- L]}
	end;
value(T) when is_tuple(T), (tuple_size(T) =:= 4 orelse tuple_size(T) =:= 8) ->
	try ip(T) catch throw:bad_value -> {arr, [value(E) || E <- tuple_to_list(T)]} end;
value(T) when is_tuple(T) -> {arr, [value(E) || E <- tuple_to_list(T)]};
value(_) -> throw(bad_value).

str_check(B) ->
	case unicode:characters_to_binary(B) of
		B -> B;
		_ -> throw(bad_value)
	end.

key(K) when is_atom(K) -> atom_to_binary(K);
key(K) when is_binary(K) -> K;
key(K) when is_list(K) -> str(K);
key(_) -> throw(bad_value).

%% A JSON encoder for the terms built above.
encode(true) -> <<"true">>;
encode(false) -> <<"false">>;
encode(null) -> <<"null">>;
encode(I) when is_integer(I) -> integer_to_binary(I);
encode(F) when is_float(F) -> float_to_binary(F, [short]);
encode(B) when is_binary(B) -> [$", escape(B, <<>>), $"];
encode({arr, L}) -> [$[, join([encode(E) || E <- L]), $]];
encode({obj, L}) -> [${, join([[encode(K), $:, encode(V)] || {K, V} <- L]), $}].

join([]) -> [];
join([H|T]) -> [H|[[$,, E] || E <- T]].

escape(<<>>, Acc) -> Acc;
escape(<<$", R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\\"">>);
escape(<<$\\, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\\\">>);
escape(<<C, R/binary>>, Acc) when C < 16#20 ->
	H = list_to_binary(io_lib:format("\\u~4.16.0b", [C])),
	escape(R, <<Acc/binary, H/binary>>);
escape(<<C, R/binary>>, Acc) -> escape(R, <<Acc/binary, C>>).

%% The library's GM_EOPTION sentence ("option http_opts.version = ...: ...")
%% as Gun's error term, using the user's own option values.
option_error(Msg, Opts) ->
	Path = case re:run(Msg, "^options? ([a-zA-Z0-9_.]+)", [{capture, all_but_first, binary}]) of
		{match, [P]} -> binary:split(P, <<".">>, [global]);
		_ -> []
	end,
	gun_error(Path, Opts, Msg).

gun_error([Top|Rest], Opts, _Msg) ->
	case find_key(Top, Opts) of
		{ok, K, V} -> proto_error(K, V, Rest);
		error -> {options, {binary_to_atom(Top), undefined}}
	end;
gun_error([], Opts, Msg) ->
	{options, {Opts, Msg}}.

%% Gun reports a bad protocol option as {options, {Proto, {Key, Value}}}.
proto_error(K, V, [Sub|_]) when is_map(V),
		(K =:= http_opts orelse K =:= http2_opts orelse K =:= ws_opts
			orelse K =:= raw_opts orelse K =:= socks_opts) ->
	Proto = case K of
		http_opts -> http; http2_opts -> http2; ws_opts -> ws;
		raw_opts -> raw; socks_opts -> socks
	end,
	case find_key(Sub, V) of
		{ok, SK, SV} -> {options, {Proto, {SK, SV}}};
		error -> {options, {Proto, {binary_to_atom(Sub), undefined}}}
	end;
proto_error(K, V, _) ->
	{options, {K, V}}.

find_key(Name, Map) ->
	case [{K, V} || {K, V} <- maps:to_list(Map), key_name(K) =:= Name] of
		[{K, V}|_] -> {ok, K, V};
		[] -> error
	end.

key_name(K) when is_atom(K) -> atom_to_binary(K);
key_name(K) when is_binary(K) -> K;
key_name(K) -> iolist_to_binary(io_lib:format("~p", [K])).
