%% Server-sent events: Gun's content_handlers (gun_sse_h, gun_data_h) give
%% Gun's {gun_sse, ConnPid, StreamRef, Event | fin} messages, against the
%% test server's /sse (tests/testserver SSEStream), as Gun's sse_SUITE does
%% against Cowboy. Needs the test server (run_tests.sh exports GM_HTTP_PORT).
-module(gunmetal_sse_tests).
-include_lib("eunit/include/eunit.hrl").

port() -> list_to_integer(os:getenv("GM_HTTP_PORT")).

open(Opts, Proto) ->
	{ok, C} = gunmetal:open("127.0.0.1", port(), Opts#{retry => 0}),
	{ok, Proto} = gunmetal:await_up(C),
	C.

%% What /sse gives, as Gun's messages: the retry alone is no message of
%% Gun's; an id alone is the map with last_event_id only.
want() -> [
	#{last_event_id => <<>>, event_type => <<"message">>, data => <<"first\nsecond">>},
	#{last_event_id => <<"7">>, event_type => <<"tick">>, data => <<"x">>},
	#{last_event_id => <<"8">>},
	#{last_event_id => <<"8">>, event_type => <<"message">>, data => <<"after">>},
	fin
].

events(C, R) ->
	receive
		{gun_sse, C, R, fin} -> [fin];
		{gun_sse, C, R, Ev} -> [Ev|events(C, R)];
		{gun_data, C, R, _, _} = Other -> error({unexpected, Other})
	after 5000 -> error(timeout)
	end.

clock(C) ->
	R = gunmetal:get(C, "/sse", [{<<"accept">>, <<"text/event-stream">>}]),
	receive
		{gun_response, C, R, nofin, 200, Headers} ->
			{_, <<"text/event-stream">>} = lists:keyfind(<<"content-type">>, 1, Headers)
	after 5000 -> error(timeout)
	end,
	?assertEqual(want(), events(C, R)),
	%% Other bodies stay gun_data (gun_data_h).
	R2 = gunmetal:get(C, "/sse?ct=text/plain"),
	{response, nofin, 200, _} = gunmetal:await(C, R2),
	{ok, <<16#EF, 16#BB, 16#BF, ": hello", _/binary>>} = gunmetal:await_body(C, R2),
	gunmetal:close(C).

http_clock_test() ->
	clock(open(#{http_opts => #{content_handlers => [gun_sse_h, gun_data_h]}}, http)).

http2_clock_test() ->
	clock(open(#{protocols => [http2], http2_opts => #{content_handlers => [gun_sse_h, gun_data_h]}}, http2)).

with_options_test() ->
	clock(open(#{http_opts => #{content_handlers => [{gun_sse_h, #{max_event_size => 1000}}, gun_data_h]}}, http)).

per_request_test() ->
	C = open(#{}, http),
	R = gunmetal:get(C, "/sse", [], #{content_handlers => [gun_sse_h]}),
	{response, nofin, 200, _} = gunmetal:await(C, R),
	?assertEqual(want(), events(C, R)),
	%% The connection's own: gun_data_h.
	R2 = gunmetal:get(C, "/sse"),
	{response, nofin, 200, _} = gunmetal:await(C, R2),
	{ok, <<16#EF, 16#BB, 16#BF, _/binary>>} = gunmetal:await_body(C, R2),
	gunmetal:close(C).

%% A handler module of the user's own is not run: refused with its name,
%% at open (Gun's {options, ...} error) and per request (badarg).
own_handler_refused_test() ->
	?assertMatch({error, {options, {http, {content_handlers, [my_handler_h]}}}},
		gunmetal:open("127.0.0.1", port(), #{http_opts => #{content_handlers => [my_handler_h]}})),
	?assertMatch({error, {options, {http2, {content_handlers, []}}}},
		gunmetal:open("127.0.0.1", port(), #{http2_opts => #{content_handlers => []}})),
	C = open(#{}, http),
	{'EXIT', {{badarg, Msg}, _}} = (catch gunmetal:get(C, "/sse", [], #{content_handlers => [gun_sse_h, my_h]})),
	?assertNotEqual(nomatch, binary:match(Msg, <<"my_h is not supported">>)),
	{'EXIT', {{badarg, Msg2}, _}} = (catch gunmetal:get(C, "/sse", [],
		#{content_handlers => [{gun_sse_h, #{max_event_size => 0}}]})),
	?assertNotEqual(nomatch, binary:match(Msg2, <<"max_event_size">>)),
	gunmetal:close(C).
