window.YTD.tweets.part0 = [
  {
    "tweet" : {
      "edit_info" : {
        "initial" : {
          "editTweetIds" : [ "1050300000000000003" ],
          "editableUntil" : "2018-10-11T10:00:00.000Z",
          "editsRemaining" : "5",
          "isEditEligible" : false
        }
      },
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [ ],
        "urls" : [ ],
        "media" : [
          {
            "expanded_url" : "https://twitter.com/alexkim/status/1050300000000000003/photo/1",
            "indices" : [ "0", "23" ],
            "url" : "https://t.co/Ph0t0L1nk1",
            "media_url_https" : "https://pbs.twimg.com/media/DpQ1.jpg",
            "id_str" : "1050299999999999999",
            "type" : "photo",
            "display_url" : "pic.twitter.com/Ph0t0L1nk1"
          }
        ]
      },
      "display_text_range" : [ "0", "23" ],
      "favorite_count" : "12",
      "id_str" : "1050300000000000003",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1050300000000000003",
      "created_at" : "Thu Oct 11 09:00:00 +0000 2018",
      "favorited" : false,
      "full_text" : "https://t.co/Ph0t0L1nk1",
      "lang" : "zxx"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [
          {
            "name" : "Sam Ortiz",
            "screen_name" : "sam_ortiz",
            "indices" : [ "0", "10" ],
            "id_str" : "2244994945",
            "id" : "2244994945"
          }
        ],
        "urls" : [ ]
      },
      "display_text_range" : [ "0", "49" ],
      "favorite_count" : "3",
      "in_reply_to_status_id_str" : "1050200000000000001",
      "id_str" : "1050200000000000002",
      "in_reply_to_user_id" : "2244994945",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1050200000000000002",
      "in_reply_to_status_id" : "1050200000000000001",
      "created_at" : "Wed Oct 10 22:45:10 +0000 2018",
      "favorited" : false,
      "full_text" : "@sam_ortiz agreed, &lt;noscript&gt; tags are the worst",
      "lang" : "en",
      "in_reply_to_screen_name" : "sam_ortiz",
      "in_reply_to_user_id_str" : "2244994945"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"http://twitter.com/download/android\" rel=\"nofollow\">Twitter for Android</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [
          {
            "name" : "Rust Language",
            "screen_name" : "rustlang",
            "indices" : [ "3", "12" ],
            "id_str" : "165262228",
            "id" : "165262228"
          }
        ],
        "urls" : [ ]
      },
      "display_text_range" : [ "0", "60" ],
      "favorite_count" : "0",
      "id_str" : "1050150000000000000",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1050150000000000000",
      "created_at" : "Wed Oct 10 21:00:00 +0000 2018",
      "favorited" : false,
      "full_text" : "RT @rustlang: Rust 1.29.2 has been released!",
      "lang" : "en"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [ ],
        "urls" : [
          {
            "url" : "https://t.co/AbCdEf1234",
            "expanded_url" : "https://blog.example.com/parser-rewrite",
            "display_url" : "blog.example.com/parser-rewrite",
            "indices" : [ "72", "95" ]
          }
        ]
      },
      "display_text_range" : [ "0", "95" ],
      "favorite_count" : "41",
      "id_str" : "1050118621198921728",
      "truncated" : false,
      "retweet_count" : "7",
      "id" : "1050118621198921728",
      "created_at" : "Wed Oct 10 20:19:24 +0000 2018",
      "favorited" : false,
      "full_text" : "Finally shipped the parser rewrite &amp; it's 4x faster. Write-up: https://t.co/AbCdEf1234",
      "lang" : "en"
    }
  }
]
